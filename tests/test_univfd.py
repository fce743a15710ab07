"""UnivFD without CLIP's weights (none are on this machine; nothing is downloaded): the architecture against
the published parameter counts, the head in the official fc_weights.pth format, the test preprocessing by
hand, reading OpenAI's TorchScript file format, and the exit-2 message for a CLIP file in the wrong place.

ViT-L/14 is ~300M parameters: it is built once per session and used by few tests."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.cli import main
from bench.engine.decode import DecodeSpec
from bench.errors import BenchError
from bench.outputs.reported import load_costs
from detectors import export_state_dict, get_detector, load_detector
from detectors.checkpoints import CheckpointError, load_state_dict_strict, read_state_dict
from detectors.layers import FeatureTap, feature_module
from detectors.loading import checkpoint_target
from detectors.univfd import CLIP_MEAN, CLIP_STD, read_openai_clip


@pytest.fixture(scope="session")
def univfd_model():
    torch.manual_seed(0)
    return get_detector("univfd").build()


@pytest.fixture
def fc_file(tmp_path):
    """A head in the official format (validate.py: model.fc.load_state_dict(torch.load(ckpt)))."""
    torch.manual_seed(1)
    head = {"weight": torch.randn(1, 768) * 0.05, "bias": torch.tensor([0.3])}
    path = tmp_path / "fc_weights.pth"
    torch.save(head, path)
    return path, head


@pytest.mark.slow
def test_parameter_counts_against_the_published_figures(univfd_model):
    visual = sum(p.numel() for p in univfd_model.visual.parameters())
    assert round(visual / 1e6, 2) == 303.97  # open_clip docs/model_profile.csv: ViT-L-14 image_mparams
    head = sum(p.numel() for p in univfd_model.fc.parameters())
    assert head == 768 + 1
    trainable = sum(p.numel() for p in univfd_model.parameters() if p.requires_grad)
    assert trainable == head  # a linear probe: the backbone is frozen
    # The LFM paper's 202.05M for Ojha is what thop 0.1.1 counted: only modules it had a rule for, i.e.
    # the patch conv and the nn.Linear layers (the MLPs and the head), not nn.MultiheadAttention's
    # projections, the embeddings, LayerNorms or the final projection. The same rule over this model:
    counted = sum(p.numel() for m in univfd_model.modules() if type(m) in (nn.Conv2d, nn.Linear)
                  for p in m.parameters())
    reported = next(c for c in load_costs() if c.method == "Ojha")
    assert round(counted / 1e6, 2) == reported.params_m


@pytest.mark.slow
def test_output_shape_and_the_feature_the_head_reads(univfd_model):
    from open_clip.transformer import QuickGELU

    # OpenAI's ViT-L/14 was trained with QuickGELU (x * sigmoid(1.702 x)), not nn.GELU
    assert all(isinstance(block.mlp.gelu, QuickGELU) for block in univfd_model.visual.transformer.resblocks)
    x = torch.randn(1, 3, 224, 224)
    detector = get_detector("univfd")
    with torch.no_grad(), FeatureTap(feature_module(detector, univfd_model)) as tap:
        logits = univfd_model(x)
    assert logits.shape == (1,)
    assert tap.features.shape == (1, 768)
    by_hand = tap.features @ univfd_model.fc.weight.T + univfd_model.fc.bias  # fc(encode_image(x))
    torch.testing.assert_close(logits, by_hand.squeeze(1), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_official_head_file_loads_strictly_and_exports_back(univfd_model, fc_file):
    path, head = fc_file
    detector = get_detector("univfd")
    load_state_dict_strict(checkpoint_target(detector, univfd_model), read_state_dict(path), detector, path)
    assert torch.equal(univfd_model.fc.weight, head["weight"]) and torch.equal(univfd_model.fc.bias, head["bias"])
    exported = export_state_dict(univfd_model, detector)  # what bench train writes: the official format
    assert set(exported) == {"weight", "bias"} and exported["weight"].shape == (1, 768)
    # a two-class head (another detector's format) is refused, naming the mismatch
    torch.save({"weight": torch.zeros(2, 768), "bias": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"weight \(checkpoint \(2, 768\), model \(1, 768\)\)"):
        load_state_dict_strict(checkpoint_target(detector, univfd_model), read_state_dict(path), detector, path)


def test_clip_file_in_the_wrong_place_is_exit_2_with_the_expected_path(tmp_path, monkeypatch, fc_file, capsys):
    weights = tmp_path / "weights"
    (weights / "clip").mkdir(parents=True)
    (weights / "clip" / "ViT-L-14.pt").write_bytes(b"not here")  # one folder too deep
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(weights))
    with pytest.raises(BenchError, match=f"Put it at {weights / 'ViT-L-14.pt'}") as raised:
        load_detector("univfd", str(fc_file[0]))
    assert raised.value.exit_code == 2
    image = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(image)
    assert main(["predict", "--detector", "univfd", "--weights", str(fc_file[0]), str(image)]) == 2
    assert str(weights / "ViT-L-14.pt") in capsys.readouterr().err


def test_test_preprocessing_is_validate_pys_by_hand(tmp_path):
    import numpy as np
    from PIL import Image

    pre = get_detector("univfd").preprocessing
    assert (pre.mean, pre.std) == (CLIP_MEAN, CLIP_STD)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (250, 301, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    # own protocol = validate.py: CenterCrop(224) of the file as it is, no resize
    own = DecodeSpec.for_detector(256, pre, own_protocol=True).decode(tmp_path / "a.png").pixels
    top, left = round((250 - 224) / 2), round((301 - 224) / 2)
    crop = pixels[top:top + 224, left:left + 224].astype(np.float64) / 255
    expected = (crop - np.array(CLIP_MEAN)) / np.array(CLIP_STD)  # ToTensor + Normalize by hand
    got = pre.normalize(own).permute(1, 2, 0).double().numpy()
    assert np.abs(got - expected).max() < 1e-5
    # the paper's protocol: Resize((256, 256)) as for every detector, then the 224 crop a ViT-L/14 needs
    paper = DecodeSpec.for_detector(256, pre)
    assert (paper.resize, paper.center_crop) == (256, 224)


def test_reads_openai_torchscript_files_and_keeps_only_the_visual_weights(tmp_path):
    class Clip(nn.Module):  # the layout of OpenAI's files: visual.* and text tower keys, fp16
        def __init__(self):
            super().__init__()
            self.visual = nn.Module()
            self.visual.proj = nn.Parameter(torch.randn(4, 3).half())
            self.visual.conv1 = nn.Conv2d(3, 4, 2, bias=False).half()
            self.token_embedding = nn.Embedding(5, 3).half()

        def forward(self, x):
            return x

    clip = Clip()
    torch.jit.save(torch.jit.script(clip), tmp_path / "ViT-L-14.pt")
    visual = read_openai_clip(tmp_path / "ViT-L-14.pt")
    assert set(visual) == {"proj", "conv1.weight"}
    assert visual["proj"].dtype == torch.float32
    assert torch.equal(visual["proj"], clip.visual.proj.float())
    torch.save(clip.state_dict(), tmp_path / "state.pt")  # a plain state dict is read with weights_only
    assert set(read_openai_clip(tmp_path / "state.pt")) == {"proj", "conv1.weight"}


def test_weights_list_says_the_hand_downloaded_files_are_not_here(capsys):
    assert main(["weights", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    for name, filename in (("univfd:official", "univfd_fc_weights.pth"), ("clip:ViT-L-14", "ViT-L-14.pt"),
                           ("safe:official", "safe_checkpoint-best.pth")):
        assert rows[name].split()[1] == "no" and filename in rows[name], rows[name]
