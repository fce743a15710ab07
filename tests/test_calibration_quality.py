"""Calibration quality (bench.engine.calibration_quality) and calibration maps (bench.engine.calibration)
against scikit-learn and hand formulas, and through `bench run --calibrate-method`."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss

from bench.engine import calibration as C
from bench.engine import calibration_quality as Q


def _sample(rng, n=4000, scale=1.0, a=1.0, b=0.0):
    """Logits whose true fake-probability is sigmoid(a x logit + b), labels drawn from it."""
    z = rng.normal(0, 2.5, n)
    logits = z * scale
    labels = (rng.random(n) < 1 / (1 + np.exp(-(a * logits + b)))).astype(int)
    return labels, logits


def test_ece_brier_nll_agree_with_sklearn():
    rng = np.random.default_rng(0)
    labels, logits = _sample(rng, scale=2.0, a=0.5)  # over-confident by a factor of 2
    probs = 1 / (1 + np.exp(-logits))
    for bins in (15, 7):
        true, predicted = calibration_curve(labels, probs, n_bins=bins, strategy="uniform")
        counts = np.bincount(np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], probs), minlength=bins)
        expected = np.sum(counts[counts > 0] * np.abs(true - predicted)) / labels.size
        assert Q.ece(labels, probs, bins) == pytest.approx(expected, abs=1e-12)
        block = Q.reliability(labels, probs, bins)
        assert [v for v in block["frac_fake"] if v is not None] == pytest.approx(true)
        assert [v for v in block["mean_prob"] if v is not None] == pytest.approx(predicted)
    assert Q.brier(labels, probs) == pytest.approx(brier_score_loss(labels, probs))
    assert Q.nll(labels, logits) == pytest.approx(log_loss(labels, probs), rel=1e-9)
    # a confident mistake costs its logit instead of scikit-learn's clipped probability
    assert Q.nll([1], [-60.0]) == pytest.approx(60.0)


def test_cllr_by_hand_and_its_reference_points():
    rng = np.random.default_rng(1)
    labels, llr = _sample(rng, n=500)
    p = 1 / (1 + np.exp(-llr))
    by_hand = 0.5 * (np.mean(-np.log2(p[labels == 1])) + np.mean(-np.log2(1 - p[labels == 0])))
    assert Q.cllr(labels, llr) == pytest.approx(by_hand)
    assert Q.cllr([0, 1], [0.0, 0.0]) == pytest.approx(1.0)  # "don't know" costs one bit
    assert math.isnan(Q.cllr([1, 1], [2.0, 3.0]))  # needs both classes


def test_temperature_and_platt_recover_the_true_map():
    rng = np.random.default_rng(2)
    labels, logits = _sample(rng, n=20000, scale=3.0, a=1 / 3.0)  # logits three times too confident
    assert C.fit_temperature(labels, logits) == pytest.approx(3.0, rel=0.08)
    labels, logits = _sample(rng, n=20000, a=0.6, b=0.8)
    a, b = C.fit_platt(labels, logits)
    # the same smoothed-target likelihood, fitted by scikit-learn: each image as a fake with weight t and a
    # real with weight 1 - t
    targets = C._targets(labels)
    x = np.r_[logits, logits][:, None]
    y = np.r_[np.ones_like(labels), np.zeros_like(labels)]
    model = LogisticRegression(C=1e10, max_iter=1000).fit(x, y, sample_weight=np.r_[targets, 1 - targets])
    assert a == pytest.approx(model.coef_[0, 0], rel=1e-3) == pytest.approx(0.6, rel=0.08)
    assert b == pytest.approx(model.intercept_[0], rel=1e-3, abs=1e-3)
    assert -b / a == pytest.approx(-0.8 / 0.6, rel=0.1)


def test_isotonic_map_and_where_it_crosses_one_half():
    rng = np.random.default_rng(3)
    labels, logits = _sample(rng, n=3000, a=0.8, b=-0.5)
    x, y = C.fit_isotonic(labels, logits)
    model = IsotonicRegression(out_of_bounds="clip").fit(logits, C._targets(labels))
    calibration = C.Calibration("set", ("set",), "real95", C.isotonic_threshold(x, y), 1, 1, "isotonic",
                                {"x": x, "y": y})
    grid = np.linspace(-12, 12, 501)
    assert 1 / (1 + np.exp(-calibration.log_odds(grid))) == pytest.approx(model.predict(grid))
    t = calibration.threshold_logit
    assert model.predict([t - 1e-6])[0] <= 0.5 < model.predict([t + 1e-6])[0]
    assert C.isotonic_threshold([0.0, 1.0, 2.0], [0.2, 0.4, 0.8]) == pytest.approx(1.25)
    assert C.isotonic_threshold([0.0, 1.0], [0.6, 0.9]) == -math.inf
    assert C.isotonic_threshold([0.0, 1.0], [0.1, 0.5]) == math.inf


def test_a_separable_calibration_set_still_gives_finite_maps():
    labels = np.r_[np.zeros(50, int), np.ones(50, int)]
    logits = np.r_[np.linspace(-9, -1, 50), np.linspace(1, 9, 50)]
    assert 1e-3 < C.fit_temperature(labels, logits) < 1e3
    a, b = C.fit_platt(labels, logits)
    assert np.isfinite([a, b]).all() and a > 0
    x, y = C.fit_isotonic(labels, logits)
    assert 0 < min(y) and max(y) < 1  # smoothed targets: no step of exactly 0 or 1


# --- through bench run -------------------------------------------------------------------------------


@pytest.fixture
def small_demo(tmp_path, monkeypatch):
    from bench.demo import build

    monkeypatch.setattr(build, "DEFAULT_COUNTS", {**build.DEFAULT_COUNTS, "demo-gan": 3, "demo-diffusion": 2,
                                                  "demo-train": 4, "demo-val": 12})
    root = tmp_path / "data"
    build.ensure_demo_data(root, quiet=True)
    return root


@pytest.mark.slow
def test_bench_run_with_a_platt_map_reports_calibrated_metrics_beside_raw_ones(small_demo, tmp_path, capsys):
    from bench import api
    from bench.cli import main

    out = tmp_path / "results"
    argv = ["run", "--detector", "lfm", "--suite", "demo-gan", "--calibrate-on", "demo-val", "--calibrate-method",
            "platt", "--data-root", str(small_demo), "--output", str(out), "--workers", "0", "--batch-size", "8"]
    assert main(argv) == 0
    assert "calibration map: Platt scaling" in capsys.readouterr().out
    (folder,) = sorted((out / "runs").iterdir())
    metrics = json.loads((folder / "metrics.json").read_text())
    recorded = metrics["calibration"]
    assert recorded["method"] == "platt" and recorded["on"] == "demo-val" and recorded["rule"] is None
    val = api.evaluate("lfm", "demo-val", data_root=str(small_demo), output=str(tmp_path / "v"), write_run=False,
                       workers=0).runs["lfm"].scores
    a, b = C.fit_platt(val["label"].to_numpy(), val["logit"].to_numpy())
    assert recorded["parameters"] == pytest.approx({"a": a, "b": b})
    frame = pd.read_parquet(folder / "scores.parquet")
    for generator, m in metrics["suites"]["demo-gan"]["generators"].items():
        rows = frame[frame["generator"] == generator]
        labels, logits = rows["label"].to_numpy(), rows["logit"].to_numpy()
        calibrated = 1 / (1 + np.exp(-(a * logits + b)))
        assert m["acc_cal"] == pytest.approx(((calibrated > 0.5) == labels).mean())
        assert m["calibration_quality_cal"]["brier"] == pytest.approx(brier_score_loss(labels, calibrated))
        assert m["calibration_quality"]["brier"] == pytest.approx(
            brier_score_loss(labels, 1 / (1 + np.exp(-logits))))
    assert "calibration_quality_cal" in metrics["suites"]["demo-gan"]["mean"]
    assert metrics["reliability_cal"]["bins"] == 15


def test_a_map_needs_a_calibration_set_and_not_an_evaluated_one(small_demo, tmp_path, capsys):
    from bench.cli import main

    base = ["run", "--detector", "lfm", "--data-root", str(small_demo), "--output", str(tmp_path / "r"),
            "--workers", "0"]
    assert main([*base, "--suite", "demo-val", "--calibrate-method", "temperature"]) == 2
    assert "needs --calibrate-on" in capsys.readouterr().err
    assert main([*base, "--suite", "demo-val", "--calibrate-on", "demo-val", "--calibrate-method", "isotonic"]) == 2
    assert "also being evaluated" in capsys.readouterr().err
    assert main([*base, "--suite", "demo-gan", "--ece-bins", "0"]) == 2
    assert "--ece-bins" in capsys.readouterr().err
    for flag, value, message in (("--ci-resamples", "99", "at least 100"), ("--ci-level", "1.5", "between 0 and 1"),
                                 ("--ci-seed", "-2", ">= 0")):
        assert main([*base, "--suite", "demo-gan", flag, value]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:  # argparse's own exit 2 for a choice it does not know
        main([*base, "--suite", "demo-gan", "--ci-method", "basic"])
    assert stopped.value.code == 2
    assert not (tmp_path / "r" / "runs").exists() or not any((tmp_path / "r" / "runs").iterdir())
