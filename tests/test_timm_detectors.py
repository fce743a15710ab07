"""`timm:<model_name>` detectors: resolution through the registry, timm's preprocessing, training one step,
checkpoints, `--init imagenet` from a local file only, and the CLI's exit codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from bench.cli import main
from bench.errors import BenchError
from bench.train import TrainConfig, train
from detectors import get_detector, load_detector
from detectors.timm_backbones import TimmDetector, local_pretrained_file


def make_folder(root: Path, n_per_class: int, size: int, seed: int = 0) -> Path:
    """`root/{0_real,1_fake}/*.png` of random pixels."""
    rng = np.random.default_rng(seed)
    for label in ("0_real", "1_fake"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


@pytest.fixture(autouse=True)
def no_timm_caches(tmp_path_factory, monkeypatch):
    """timm's own caches point at empty folders: nothing found there, nothing downloaded."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path_factory.mktemp("torchhub")))


@pytest.mark.slow
def test_a_timm_name_resolves_to_a_one_logit_timm_model():
    detector = get_detector("timm:resnet18")
    model = detector.build()
    assert isinstance(model, TimmDetector)
    reference = timm.create_model("resnet18", num_classes=1)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    assert model(torch.rand(2, 3, 64, 64)).shape == (2,)


def test_preprocessing_is_timms_data_config():
    for name in ("resnet18", "test_vit"):
        config = timm.data.resolve_data_config({}, model=timm.create_model(name, pretrained=False))
        pre = get_detector(f"timm:{name}").preprocessing
        assert pre.mean == pytest.approx(config["mean"]) and pre.std == pytest.approx(config["std"])
        assert pre.interpolation == config["interpolation"]
        assert pre.own_crop == config["input_size"][-1]
        # timm's eval transform: scale size floor(input / crop_pct), then the crop
        assert pre.own_resize == int(config["input_size"][-1] / config["crop_pct"])


@pytest.mark.slow
def test_vits_take_the_papers_256_and_odd_native_sizes():
    # timm's tiny test ViT (160x160 position embeddings), built with a dynamic input size
    model = get_detector("timm:test_vit").build()
    assert get_detector("timm:test_vit").preprocessing.input_size is None
    with torch.no_grad():
        assert model(torch.rand(1, 3, 256, 256)).shape == (1,)
        assert model(torch.rand(1, 3, 101, 77)).shape == (1,)


def test_a_fixed_size_model_gets_a_centre_crop_under_every_protocol():
    from bench.engine.decode import DecodeSpec

    pre = get_detector("timm:test_coatnet").preprocessing  # no dynamic size in this architecture
    assert pre.input_size == 160
    assert DecodeSpec.for_detector(256, pre).center_crop == 160
    assert DecodeSpec.for_detector(None, pre).center_crop == 160
    own = DecodeSpec.for_detector(256, pre, own_protocol=True)
    assert (own.resize, own.center_crop) == (168, 160)  # floor(160 / 0.95), then the crop
    assert DecodeSpec.for_detector(256, get_detector("timm:test_resnet").preprocessing).center_crop is None


def test_unknown_timm_name_is_exit_2_with_did_you_mean(capsys):
    with pytest.raises(BenchError, match="Did you mean: timm:resnet50"):
        get_detector("timm:resnet5O")
    assert main(["profile", "--detector", "timm:resnet5O"]) == 2
    assert "timm:resnet50" in capsys.readouterr().err


@pytest.mark.slow
def test_list_and_profile_work_for_timm_names(capsys, tmp_path):
    assert main(["list", "detectors"]) == 0
    assert "timm:<name>" in capsys.readouterr().out
    assert main(["profile", "--detector", "timm:test_resnet", "--input-size", "64", "--warmup", "0", "--repeats", "1",
                 "--batch-size", "2", "--output", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "profile" / "timm-test_resnet.json").is_file()  # no colon in file names
    params = sum(p.numel() for p in timm.create_model("test_resnet", num_classes=1).parameters())
    assert f'"params": {params}' in out


@pytest.mark.slow
def test_train_one_step_save_and_reload_identical_logits(tmp_path):
    make_folder(tmp_path / "data" / "train", 2, 32, seed=1)
    make_folder(tmp_path / "data" / "val", 1, 32, seed=2)
    config = TrainConfig(detector="timm:resnet18", train_set=str(tmp_path / "data" / "train"),
                         output=str(tmp_path / "run"), epochs=1, batch_size=4, max_steps_per_epoch=1,
                         resize=None, crop=32, workers=0, lr=1e-2)
    result = train(config, progress=False)
    assert result.history[0]["epoch"] == 1
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    trained = TimmDetector("resnet18")
    trained.load_state_dict(state["model"])
    loaded = load_detector("timm:resnet18", str(result.last_path)).model
    x = torch.rand(3, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), trained.eval()(x))
    # and one optimiser step moved the weights away from the recipe's seeded initialisation
    from bench.train import mix_seed

    torch.manual_seed(mix_seed(0, "init"))
    initial = TimmDetector("resnet18")
    assert not torch.equal(initial.net.conv1.weight, trained.net.conv1.weight)


def test_init_imagenet_without_a_local_file_is_exit_2_naming_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "weights"))
    with pytest.raises(BenchError, match="timm-resnet18.safetensors"):
        local_pretrained_file("resnet18")
    make_folder(tmp_path / "data" / "train", 1, 32)
    make_folder(tmp_path / "data" / "val", 1, 32)
    code = main(["train", "--detector", "timm:resnet18", "--train-set", str(tmp_path / "data" / "train"),
                 "--init", "imagenet", "--output", str(tmp_path / "run"), "--epochs", "1"])
    assert code == 2
    assert str(tmp_path / "weights" / "timm-resnet18.safetensors") in capsys.readouterr().err


def test_init_imagenet_loads_the_local_file(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(weights))
    torch.manual_seed(5)
    imagenet = timm.create_model("resnet18", num_classes=1000)  # stands for the ImageNet file: 1000 classes
    save_file(imagenet.state_dict(), weights / "timm-resnet18.safetensors")
    detector = get_detector("timm:resnet18")
    model = detector.build()
    assert detector.imagenet_init(model) == weights / "timm-resnet18.safetensors"
    for key, value in imagenet.state_dict().items():
        if not key.startswith("fc."):  # every backbone tensor comes from the file; the head stays one logit
            assert torch.equal(model.net.state_dict()[key], value), key
    assert model.net.fc.weight.shape == (1, 512)


def test_cnndetection_init_imagenet_names_torchvisions_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path))
    detector = get_detector("cnndetection")
    with pytest.raises(BenchError, match=str(tmp_path / "resnet50-0676ba61.pth")):
        detector.imagenet_init(detector.build())
    # a file of that name that is not torchvision's (its sha256 does not start with 0676ba61) is refused
    torch.save({"fc.weight": torch.zeros(1000, 2048)}, tmp_path / "resnet50-0676ba61.pth")
    with pytest.raises(BenchError, match="not torchvision's"):
        detector.imagenet_init(detector.build())
