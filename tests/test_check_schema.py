"""`bench check` baselines are validated against a declared schema (exit 2 naming the field), and an
expected generator that is not on disk is missing data (exit 2), not a moved metric (exit 1)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from tests_support import write_suite

from bench.analyses.regression import KIND_FIELDS, load_baseline
from bench.cli import main
from bench.errors import BenchError
from detectors import export_state_dict, get_detector

GOOD = {"kind": "metrics", "detector": "lfm", "weights": {"name": "lfm:demo"}, "suite": "demo", "limit": None,
        "metrics": ["acc", "ap"], "tolerance": 0.1, "metric_tolerances": {"ap": 0.2},
        "expected": {"demo-gan": {"tconv": {"acc": 0.95, "ap": None}}, "mean": {"acc": 0.9}}}


@pytest.mark.parametrize("change, message", [
    ({"limit": -3}, "field 'limit' must be null or a positive whole number"),
    ({"limit": 0}, "field 'limit' must be null or a positive whole number"),
    ({"limit": 2.5}, "field 'limit' must be null or a positive whole number"),
    ({"limit": True}, "field 'limit' must be null or a positive whole number"),
    ({"suite": None}, "field 'suite' must be a suite name"),
    ({"tolerance": "0.1"}, "field 'tolerance' must be a number >= 0 (points); found \"0.1\""),
    ({"tolerance": -1}, "field 'tolerance' must be a number >= 0"),
    ({"metric_tolerances": {"ap": "big"}}, "field 'metric_tolerances' must be {metric: a number >= 0"),
    ({"expected": {"demo-gan": {"tconv": {"acc": "0.95"}}}}, "field 'expected' must be {suite: {generator:"),
    ({"weights": "lfm:demo"}, "field 'weights' must be {\"name\": NAME}"),
    ({"tolerence": 0.1}, "unknown field 'tolerence' for a metrics baseline. Did you mean 'tolerance'?"),
    ({"kind": "metric"}, "unknown kind 'metric'"),
])
def test_a_wrong_field_is_exit_2_naming_it(tmp_path, capsys, change, message):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({**GOOD, **change}))
    assert main(["check", "--baseline", str(path), "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err


@pytest.mark.parametrize("drop, message", [("suite", "has no 'suite' field, which a metrics baseline needs"),
                                           ("detector", "has no 'detector' field")])
def test_a_missing_required_field_is_exit_2(tmp_path, drop, message):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({k: v for k, v in GOOD.items() if k != drop}))
    with pytest.raises(BenchError, match=message):
        load_baseline(path)


def test_the_committed_baselines_and_every_declared_field_pass(tmp_path):
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parents[1] / "results" / "baselines").glob("*.json")):
        load_baseline(path)
    path = tmp_path / "b.json"
    path.write_text(json.dumps({**GOOD, "optional": True, "description": "x", "data_root": "d",
                                "protocol": {"demo-gan": "native"}}))
    assert set(json.loads(path.read_text())) - {"kind", "detector", "weights", "optional", "description",
                                                "data_root"} <= set(KIND_FIELDS["metrics"])
    load_baseline(path)
    path.write_text(json.dumps({"kind": "logits", "detector": "lfm", "weights": {"path": "w.pth"}, "images": "i",
                                "protocol": "resize256", "tolerance_logit": 1e-4, "expected": {"a.png": -1.5}}))
    load_baseline(path)


@pytest.mark.slow  # a tiny evaluation, twice
def test_an_expected_generator_missing_on_disk_is_missing_data_not_moved(tmp_path, capsys):
    torch.manual_seed(3)
    detector = get_detector("lfm")
    weights = tmp_path / "weights.pth"
    torch.save(export_state_dict(detector.build(), detector), weights)
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 2, "BEGAN": 2}, size=(48, 48))
    baseline = tmp_path / "b.json"
    baseline.write_text(json.dumps({"kind": "metrics", "detector": "lfm", "weights": {"path": str(weights)},
                                    "suite": str(suite), "metrics": ["acc"]}))
    common = ["--baseline", str(baseline), "--output", str(tmp_path / "results"), "--workers", "0"]
    assert main(["check", "--update", *common]) == 0
    assert set(json.loads(baseline.read_text())["expected"]["gangen"]) == {"AttGAN", "BEGAN", "mean"}
    shutil.rmtree(suite / "BEGAN")
    capsys.readouterr()
    assert main(["check", *common]) == 2
    out = capsys.readouterr().out
    assert "data not found: generators gangen/BEGAN are not on disk" in out and "MOVED" not in out


@pytest.mark.parametrize("expected", [{}, {"demo-gan": {}}, {"demo-gan": {"tconv": {}}, "mean": {}}])
@pytest.mark.parametrize("kind", ["metrics", "logits"])
def test_a_baseline_expecting_nothing_is_exit_2_not_a_pass(tmp_path, capsys, expected, kind):
    # a suite that is not there: were the empty baseline evaluated, it would stop there (not as "checks nothing")
    baseline = {**GOOD, "suite": str(tmp_path / "none"), "expected": expected} if kind == "metrics" else {
        "kind": "logits", "detector": "lfm", "weights": {"name": "lfm:demo"}, "images": str(tmp_path),
        "expected": {}}
    path = tmp_path / "b.json"
    path.write_text(json.dumps(baseline))
    assert main(["check", "--baseline", str(path), "--output", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    assert "expects no value" in captured.out and "would pass while checking nothing" in captured.out
    assert not (tmp_path / "r" / "cache").exists()  # refused before anything was evaluated
