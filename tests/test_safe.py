"""SAFE without its real weights: architecture against the published figures, the wavelet input against a
hand computation and torchvision's Resize, the official checkpoint layout, and its own test protocol."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import Resize

from bench.engine.decode import DecodeSpec
from bench.outputs.reported import load_costs
from detectors import get_detector, load_detector
from detectors.safe import HighFrequencyDWT, SAFENet

NPR_PARAMS = 1_437_761  # shared/README.md: NPR (fc 512 -> 1)


def reported_costs(method: str):
    return next(row for row in load_costs() if row.method == method)


def test_parameter_count_is_nprs_with_a_two_way_head_and_the_published_figure():
    params = sum(p.numel() for p in get_detector("safe").build().parameters())
    assert params == NPR_PARAMS + 512 + 1  # one more output of fc1: 512 weights and a bias
    assert round(params / 1e6, 2) == reported_costs("SAFE").params_m  # 1.44M in the LFM paper's table


@pytest.mark.slow
def test_paper_convention_macs_within_one_percent_of_the_reported_figure():
    from bench.analyses.profile import count_macs

    macs = count_macs(get_detector("safe").build(), 256)
    reported = reported_costs("SAFE").flops_g * 1e9  # 2.30B
    assert abs(macs - reported) / reported < 0.01


def haar_diagonal_hand(x: torch.Tensor) -> torch.Tensor:
    """The HH band of pywt's dwt2(x, 'bior1.3', mode='symmetric') for even sizes, written out by hand.

    bior1.3's analysis high-pass is [0, 0, -a, a, 0, 0] (a = 1/sqrt(2)), so along one axis of even length
    n the band is [-d_0, d_0, d_1, ..., d_{n/2-1}, -d_{n/2-1}] with d_m = a (x[2m] - x[2m+1]): the
    symmetric extension mirrors the first and last pair."""
    a = 1 / math.sqrt(2)

    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        t = t.movedim(dim, -1)
        d = a * (t[..., 0::2] - t[..., 1::2])
        return torch.cat([-d[..., :1], d, -d[..., -1:]], dim=-1).movedim(-1, dim)

    return along(along(x, -1), -2)


def test_wavelet_input_against_a_hand_computation_and_torchvision_resize():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 12, dtype=torch.float64)
    hh = haar_diagonal_hand(x)
    assert hh.shape == (2, 3, 10, 8)  # floor((n + 6 - 1) / 2) per axis
    expected = Resize([16, 12])(hh)  # what SAFE's _preprocess_dwt calls (bilinear, antialias)
    got = HighFrequencyDWT().double()(x)
    assert torch.allclose(got, expected, atol=1e-7)  # the filter taps are float32 constants


@pytest.mark.slow
def test_logit_is_the_log_odds_of_safes_softmax_score():
    torch.manual_seed(1)
    model = SAFENet().eval()
    heads = []
    model.fc1.register_forward_hook(lambda module, args, out: heads.append(out))
    with torch.no_grad():
        logit = model(torch.rand(3, 3, 64, 64))
    softmax_fake = torch.softmax(heads[0], dim=1)[:, 1]  # engine_finetune.evaluate's y_pred
    assert torch.allclose(torch.sigmoid(logit), softmax_fake, atol=1e-6)


@pytest.mark.slow
def test_official_checkpoint_layout_loads_strictly(tmp_path):
    torch.manual_seed(2)
    source = SAFENet().eval()
    for module in source.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    state = source.state_dict()
    assert state["fc1.weight"].shape == (2, 512) and state["conv1.weight"].shape == (64, 3, 3, 3)
    # utils.save_model's layout, with the training args as an argparse.Namespace
    path = tmp_path / "checkpoint-best.pth"
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
                "epoch": "best", "scaler": {"scale": 65536.0},
                "args": argparse.Namespace(model="SAFE", input_size=256, transform_mode="crop")}, path)
    loaded = load_detector("safe", str(path)).model
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_own_protocol_is_a_256_centre_crop_without_resizing(tmp_path):
    pre = get_detector("safe").preprocessing
    assert pre.mean == (0.0, 0.0, 0.0) and pre.std == (1.0, 1.0, 1.0)  # ToTensor only
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (300, 281, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    spec = DecodeSpec.for_detector(256, pre, own_protocol=True)
    decoded = spec.decode(tmp_path / "a.png").pixels
    top, left = round((300 - 256) / 2), round((281 - 256) / 2)  # torchvision CenterCrop's offsets
    assert torch.equal(decoded, torch.from_numpy(pixels[top:top + 256, left:left + 256]).permute(2, 0, 1))
    normalized = pre.normalize(decoded)
    assert torch.allclose(normalized, decoded.float() / 255)
    paper = DecodeSpec.for_detector(256, pre)  # the paper's protocol stays the default
    assert (paper.resize, paper.center_crop) == (256, None)


@pytest.mark.parametrize("detector,method", [("safe", "SAFE"), ("univfd", "Ojha")])
def test_table_compare_matches_the_reported_rows_of_the_same_method(detector, method):
    from bench.outputs.reported import table_spec
    from bench.outputs.tables.assemble import matching_method
    from bench.outputs.tables.reproduced import ReproducedModel, _registered_reported_method

    model = ReproducedModel(detector=detector, display_name=detector, weights_name=None, weights_sha256=None,
                            reported_method=_registered_reported_method(detector))
    assert matching_method(table_spec("comparison"), model) == method
    if detector == "univfd":  # Ojha is in every table of the paper; SAFE only in the comparison table
        assert matching_method(table_spec("ufd"), model) == "Ojha"
