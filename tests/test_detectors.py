"""The detector registry, checkpoint loading and named weights."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from bench.errors import BenchError, UnknownNameError
from detectors import (
    CheckpointError,
    export_state_dict,
    get_detector,
    list_detectors,
    load_detector,
    read_state_dict,
)
from detectors import registry as registry_module

REQUIRED = {"lfm", "lfm-official", "npr", "cnndetection", "lfm-gap", "lfm-no-rbld", "lfm-no-rks", "lfm-k1",
            "lfm-k4", "lfm-k64", "lfm-rgb", "lfm-attention"}


def test_every_required_detector_is_registered():
    assert REQUIRED <= set(list_detectors())


@pytest.mark.parametrize("name,params", [("lfm", 725_641), ("npr", 1_437_761), ("cnndetection", 23_510_081)])
def test_parameter_counts(name, params):
    assert sum(p.numel() for p in get_detector(name).build().parameters()) == params


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownNameError, match="Did you mean: lfm-gap"):
        get_detector("lfm-gapp")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_detector_builds_and_runs_forward_and_backward(name):
    model = get_detector(name).build().train()
    out = model(torch.randn(2, 3, 96, 96))
    main = out[0] if isinstance(out, tuple) else out
    assert main.shape == (2,)
    main.sum().backward()


def test_shared_weight_variants_give_identical_eval_logits(tmp_path):
    torch.manual_seed(0)
    source = get_detector("lfm").build()
    for module in source.modules():  # non-trivial BN statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "lfm.pth"
    torch.save(export_state_dict(source, get_detector("lfm")), path)
    x = torch.randn(2, 3, 128, 128)
    logits = {}
    for name in ("lfm", "lfm-official", "lfm-no-rbld", "lfm-no-rks"):
        with torch.no_grad():
            logits[name] = load_detector(name, str(path)).model(x)
    for name, value in logits.items():
        assert torch.equal(value, logits["lfm"]), name


def test_official_checkpoint_loads_strictly(official_lfm_path):
    loaded = load_detector("lfm", str(official_lfm_path))
    assert loaded.weights.sha256.startswith("903036979adb")
    assert loaded.weights.name == "lfm:official"  # a local copy of a registered file keeps its name
    raw = read_state_dict(official_lfm_path)
    assert len(raw) == 33
    exported = export_state_dict(loaded.model, loaded.detector)
    assert set(exported) == set(raw)  # round trip to the official key names


def test_checkpoint_of_another_detector_names_the_keys(official_lfm_path):
    with pytest.raises(CheckpointError, match="missing keys: .*conv1.weight.*unexpected keys: cnn.layer1"):
        load_detector("npr", str(official_lfm_path))


def test_k_mismatch_is_a_shape_error(official_lfm_path):
    with pytest.raises(CheckpointError, match="shape mismatches: head.weight"):
        load_detector("lfm-k4", str(official_lfm_path))


def test_wrapped_and_prefixed_checkpoints_load(tmp_path):
    detector = get_detector("cnndetection")
    model = detector.build()
    state = export_state_dict(model, detector)
    torch.save({"model": state}, tmp_path / "wrapped.pth")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ddp.pth")
    for name in ("wrapped.pth", "ddp.pth"):
        loaded = load_detector("cnndetection", str(tmp_path / name))
        assert torch.equal(loaded.model.net.fc.weight, model.net.fc.weight)


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_dict(bad)
    truncated = tmp_path / "truncated.pth"
    torch.save(get_detector("lfm").build().state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(CheckpointError):
        load_detector("lfm", str(truncated))


def test_detector_without_default_weights_says_what_to_do():
    with pytest.raises(BenchError, match="no default weights"):
        load_detector("lfm-k4")


def test_entry_point_detector_is_found(tmp_path, monkeypatch):
    """A tiny outside package registers a detector through the `bench.detectors` entry-point group."""
    package = tmp_path / "tiny_detector_pkg.py"
    package.write_text(textwrap.dedent('''
        import torch
        from detectors.base import Detector

        class Mean(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = torch.nn.Parameter(torch.ones(1))
            def forward(self, x):
                return x.mean(dim=(1, 2, 3)) * self.scale

        def tiny():
            return Detector(name="tiny-mean", display_name="Tiny", build_model=Mean, weights_family="tiny-mean",
                            default_weights=None)
    '''))
    dist_info = tmp_path / "tiny_detector_pkg-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-detector-pkg\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[bench.detectors]\ntiny-mean = tiny_detector_pkg:tiny\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry_module, "_entry_points_loaded", False)
    monkeypatch.setattr(registry_module, "_BUILDERS", dict(registry_module._BUILDERS))
    detector = get_detector("tiny-mean")
    assert detector.display_name == "Tiny"
    assert "tiny-mean" in list_detectors()
    torch.save(detector.build().state_dict(), tmp_path / "tiny.pth")
    loaded = load_detector("tiny-mean", str(tmp_path / "tiny.pth"))
    assert loaded.model(torch.zeros(1, 3, 4, 4)).shape == (1,)
    sys.modules.pop("tiny_detector_pkg", None)


@pytest.mark.parametrize("name", ["lfm-no-rbld", "lfm-no-rks"])
def test_train_only_ablations_have_no_weights_but_their_own(name):
    """Issue 11, item 3: LFM's weights would make an ablation reproduce LFM's numbers exactly."""
    from bench.errors import BenchError

    detector = get_detector(name)
    assert detector.default_weights is None and detector.weights_family == name and detector.reported_method is None
    for spec, train_set in ((None, "progan4"), ("demo", "demo"), ("official", "progan4")):
        with pytest.raises(BenchError, match=f"bench train --detector {name} --train-set {train_set}"):
            load_detector(name, spec)
    with pytest.raises(BenchError, match=f"'lfm' family, not to detector '{name}'.*bench train --detector {name}"):
        load_detector(name, "lfm:official")
