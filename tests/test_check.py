"""`bench check`: baselines pass, moved metrics fail with a diff table, changed weights and models are caught."""

from __future__ import annotations

import json

import pytest
import torch
from tests_support import write_suite

import lfm.model
from bench.cli import main
from detectors import export_state_dict, get_detector


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(3)
    detector = get_detector("lfm")
    model = detector.build()
    weights = tmp_path / "weights.pth"
    torch.save(export_state_dict(model, detector), weights)
    # a folder named like GANGen-Detection is scored at native size (fast with small images)
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 8, "BEGAN": 8}, size=(64, 64))
    baseline = tmp_path / "baselines" / "lfm_small.json"
    baseline.parent.mkdir()
    baseline.write_text(json.dumps({
        "kind": "metrics", "detector": "lfm", "weights": {"path": str(weights)}, "suite": str(suite),
        "metrics": ["acc", "ap", "auc"], "tolerance": 0.1,
    }))
    results = tmp_path / "results"
    common = ["--baseline", str(baseline), "--output", str(results), "--workers", "0"]
    assert main(["check", "--update", *common]) == 0  # fills the expected values and the weights' sha256
    return baseline, common, weights


def test_fresh_baseline_passes(setup, capsys):
    baseline, common, _ = setup
    data = json.loads(baseline.read_text())
    assert data["weights"]["sha256"] and set(data["expected"]["gangen"]) == {"AttGAN", "BEGAN", "mean"}
    capsys.readouterr()
    assert main(["check", *common]) == 0
    assert "ok" in capsys.readouterr().out


def test_a_value_moved_by_5_points_fails_with_the_metric_in_the_table(setup, capsys):
    baseline, common, _ = setup
    data = json.loads(baseline.read_text())
    data["expected"]["gangen"]["BEGAN"]["acc"] += 0.05
    baseline.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["check", *common]) == 1
    out = capsys.readouterr().out
    assert "MOVED" in out and "gangen/BEGAN" in out and "ACC" in out and "-5.00" in out
    assert main(["check", *common, "--tolerance", "6"]) == 0  # within a 6-point tolerance


@pytest.mark.parametrize("name,message", [("accuracy", "Did you mean"), ("n_real", "is a count")])
def test_baselines_name_metrics_as_bench_metrics_declares_them(setup, capsys, name, message):
    baseline, common, _ = setup
    data = json.loads(baseline.read_text())
    data["expected"]["gangen"]["BEGAN"][name] = 0.5
    baseline.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["check", *common]) == 2
    assert message in capsys.readouterr().err


def k8_instead_of_16(monkeypatch):
    """A code change that keeps every weight's shape: the top 8 values, each twice, instead of the top 16."""
    original = lfm.model.top_k_per_channel
    monkeypatch.setattr(lfm.model, "top_k_per_channel", lambda maps, k: original(maps, 8).repeat_interleave(2, -1))


def test_a_changed_model_does_not_reuse_stored_scores(setup, monkeypatch, tmp_path):
    """The cache key holds a fingerprint of the model's outputs, not only the weights' sha256."""
    _, common, _ = setup
    cache = tmp_path / "results" / "cache"
    before = {p for p in cache.iterdir() if p.is_dir()}  # entries (each has a .lock file beside it)
    assert main(["check", *common]) == 0
    assert {p for p in cache.iterdir() if p.is_dir()} == before  # same model: stored scores reused
    k8_instead_of_16(monkeypatch)
    main(["check", *common])
    assert len({p for p in cache.iterdir() if p.is_dir()} - before) == 2  # both generators scored again


def test_other_weights_are_reported_as_such(setup, capsys):
    baseline, common, weights = setup
    torch.manual_seed(4)
    detector = get_detector("lfm")
    torch.save(export_state_dict(detector.build(), detector), weights)
    capsys.readouterr()
    assert main(["check", *common]) == 1
    out = capsys.readouterr().out
    assert "WEIGHTS" in out and "not a regression" in out and "MOVED" not in out
    assert main(["check", "--update", *common]) == 0
    assert main(["check", *common]) == 0


def test_missing_data_is_exit_2(tmp_path, setup, capsys):
    baseline, common, _ = setup
    data = json.loads(baseline.read_text())
    data["suite"] = str(tmp_path / "nowhere")
    baseline.write_text(json.dumps(data))
    assert main(["check", *common]) == 2


def test_logits_baseline_on_the_shared_samples(tmp_path, shared_dir, official_lfm_path, capsys, monkeypatch):
    reference = json.loads((shared_dir / "reference" / "lfm_official_logits.json").read_text())["outputs"]
    baseline = tmp_path / "samples.json"
    baseline.write_text(json.dumps({
        "kind": "logits", "detector": "lfm", "weights": {"path": str(official_lfm_path)},
        "images": str(shared_dir / "samples"), "protocol": "resize256", "tolerance_logit": 1e-4,
        "expected": {name: r["resize256"]["logit"] for name, r in reference.items()},
    }))
    assert main(["check", "--baseline", str(baseline), "--output", str(tmp_path / "r")]) == 0
    with monkeypatch.context() as patch:  # the example of a changed model: K=8 instead of 16
        k8_instead_of_16(patch)
        assert main(["check", "--baseline", str(baseline), "--output", str(tmp_path / "r")]) == 1
    data = json.loads(baseline.read_text())
    data["expected"]["noise_256x256.png"] += 0.01
    baseline.write_text(json.dumps(data))
    assert main(["check", "--baseline", str(baseline), "--output", str(tmp_path / "r")]) == 1
    assert "noise_256x256.png" in capsys.readouterr().out


def test_a_sampled_baseline_guards_every_image_logit(tmp_path, monkeypatch, capsys):
    """A metrics baseline with a `limit` and `expected_logits`: the first N real and N fake files of each
    generator, each image's logit recorded by --update and compared afterwards; a folder of baselines can be
    given to --baseline."""
    torch.manual_seed(3)
    detector = get_detector("lfm")
    weights = tmp_path / "weights.pth"
    torch.save(export_state_dict(detector.build(), detector), weights)
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 5, "BEGAN": 5}, size=(64, 64))
    folder = tmp_path / "sampled"
    folder.mkdir()
    baseline = folder / "lfm_sample.json"
    baseline.write_text(json.dumps({
        "kind": "metrics", "detector": "lfm", "weights": {"path": str(weights)}, "suite": str(suite), "limit": 2,
        "metrics": ["acc", "ap"], "tolerance": 0.1, "tolerance_logit": 1e-4, "expected_logits": {},
    }))
    common = ["--baseline", str(folder), "--output", str(tmp_path / "results"), "--workers", "0"]
    assert main(["check", "--update", *common]) == 0
    logits = json.loads(baseline.read_text())["expected_logits"]
    # 2 real + 2 fake of each generator, named by suite and path, in the first files' sorted order
    assert sorted(logits) == sorted(f"gangen/{g}/{label}/img_{i:03d}.png" for g in ("AttGAN", "BEGAN")
                                    for label in ("0_real", "1_fake") for i in range(2))
    capsys.readouterr()
    assert main(["check", *common]) == 0
    assert "(16 values within tolerance)" in capsys.readouterr().out  # 8 logits + acc, ap of 2 generators, 2 means

    data = json.loads(baseline.read_text())
    data["expected_logits"]["gangen/BEGAN/1_fake/img_001.png"] += 2e-4
    baseline.write_text(json.dumps(data))
    assert main(["check", *common]) == 1
    out = capsys.readouterr().out
    assert "gangen/BEGAN/1_fake/img_001.png" in out and "logit" in out and "1 of 16" in out

    data["expected_logits"]["gangen/BEGAN/1_fake/img_001.png"] -= 2e-4
    baseline.write_text(json.dumps(data))
    assert main(["check", *common]) == 0
    k8_instead_of_16(monkeypatch)  # a model change: every logit moves
    assert main(["check", *common]) == 1
