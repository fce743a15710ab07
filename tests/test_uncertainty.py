"""Confidence intervals (bench.engine.uncertainty) against independent computations: scikit-learn's
metrics on explicitly resampled images, the exact (Clopper-Pearson) and Wilson intervals for ACC, DeLong's
standard error for AUC, a hand-computed suite mean, scipy.stats.bootstrap's BCa, and the variance of a
stratified resample."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from bench.engine import uncertainty as U
from bench.engine.metrics import metrics_from_logits
from bench.errors import BenchError


def _generator(rng, n_real, n_fake, shift=1.5, decimals=None):
    labels = np.r_[np.zeros(n_real, int), np.ones(n_fake, int)]
    logits = rng.normal(0, 1.5, n_real + n_fake) + shift * labels
    if decimals is not None:
        logits = np.round(logits, decimals)  # ties within and across the classes
    return labels, logits


def _fixed_accuracy(n_real, real_right, n_fake, fake_right):
    """Labels and logits with exactly `real_right` reals called real and `fake_right` fakes called fake."""
    labels = np.r_[np.zeros(n_real, int), np.ones(n_fake, int)]
    logits = np.r_[np.where(np.arange(n_real) < real_right, -1.0, 1.0),
                   np.where(np.arange(n_fake) < fake_right, 1.0, -1.0)]
    return labels, logits


def _interval(labels, logits, metric="acc", resamples=2000, seed=0, method="percentile", **kwargs):
    options = U.UncertaintyOptions(resamples=resamples, seed=seed, method=method)
    boot = U.bootstrap_generator(labels, logits, options, "s/g", **kwargs)
    return boot.entries(options)[metric]


# --- the resampled arithmetic is scikit-learn's -------------------------------------------------------


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_every_metric_of_a_resample_equals_sklearn_on_the_resampled_images(precision):
    rng = np.random.default_rng(3)
    for trial in range(12):
        labels, logits = _generator(rng, *rng.integers(12, 40, 2), decimals=1)
        logits[:4] = 40.0  # float32 sigmoids of these are exactly 1.0: ties across the classes
        logits[-3:] = 25.0
        calibrated = 0.3 if trial % 2 else None
        prep = U.prepare(labels, logits, prob_precision=precision, calibrated_logit=calibrated, keep_order=True)
        whole = U.point_values(prep)
        reference = metrics_from_logits(labels, logits, prob_precision=precision, calibrated_logit=calibrated)
        for key, value in zip(prep.keys, whole):
            assert value == pytest.approx(reference[key], abs=1e-12), key
        reals, fakes = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
        draw_r, draw_f = rng.integers(0, reals.size, reals.size), rng.integers(0, fakes.size, fakes.size)
        chosen = np.r_[reals[draw_r], fakes[draw_f]]
        reference = metrics_from_logits(labels[chosen], logits[chosen], prob_precision=precision,
                                        calibrated_logit=calibrated)
        R = U._counts(prep.real_slot[draw_r][None], prep.real_slots)
        F = U._counts(prep.fake_slot[draw_f][None], prep.fake_slots)
        cal = (None, None) if calibrated is None else (prep.real_ok_cal[draw_r][None].sum(1, dtype=float),
                                                       prep.fake_ok_cal[draw_f][None].sum(1, dtype=float))
        for key, value in zip(prep.keys, U._fold(prep, R, F, *cal)[0]):
            assert value == pytest.approx(reference[key], abs=1e-12), (trial, key)
        # the jackknife's first rows leave out the first real, then (after the reals) the first fake
        jack = U.jackknife(prep, rng)
        for row, dropped in ((0, reals[0]), (reals.size, fakes[0])):
            keep = np.ones(labels.size, bool)
            keep[dropped] = False
            reference = metrics_from_logits(labels[keep], logits[keep], prob_precision=precision,
                                            calibrated_logit=calibrated)
            for key, value in zip(prep.keys, jack[row]):
                assert value == pytest.approx(reference[key], abs=1e-12), (trial, "jackknife", key)


def test_every_chunk_stays_within_the_cell_budget(monkeypatch):
    """Memory is bounded by CELL_BUDGET cells per array, whatever the generator's size."""
    seen = []
    fold = U._fold

    def recording(prep, R, F, *rest):
        seen.append(max(R.size, F.size))
        return fold(prep, R, F, *rest)

    monkeypatch.setattr(U, "CELL_BUDGET", 4096)
    monkeypatch.setattr(U, "_fold", recording)
    labels, logits = _generator(np.random.default_rng(0), 3000, 2000)
    entry = _interval(labels, logits, "ap", resamples=120)
    assert entry["low"] < entry["high"]
    assert len(seen) > 100 and max(seen) <= 4096


# --- ACC: the exact and Wilson intervals bracket the bootstrap ----------------------------------------


def test_acc_interval_lies_between_clopper_pearson_and_wilson_on_large_n():
    # 900 of 1000 right in each class: the stratified bootstrap of ACC is then a binomial proportion's
    labels, logits = _fixed_accuracy(1000, 900, 1000, 900)
    entry = _interval(labels, logits, "acc", resamples=4000)
    test = stats.binomtest(1800, 2000)
    exact, wilson = test.proportion_ci(0.95, "exact"), test.proportion_ci(0.95, "wilson")
    tolerance = 0.0015  # Monte Carlo error of a 2.5% quantile of 4,000 resamples (sd ~0.0004) and the 1/n grid
    for end in ("low", "high"):
        band = sorted([getattr(exact, end), getattr(wilson, end)])
        assert band[0] - tolerance <= entry[end] <= band[1] + tolerance, (end, entry[end], band)
    assert entry["low"] < 0.9 < entry["high"]


def test_interval_is_taken_from_the_right_tails():
    """Near 100% the sampling distribution of ACC is skewed: the interval reaches further below the
    estimate than above it, as the exact binomial interval does (a swapped or reflected interval would
    not, and would leave the estimate outside or poke above 100%)."""
    labels, logits = _fixed_accuracy(150, 147, 150, 147)  # ACC 98%
    entry = _interval(labels, logits, "acc")
    exact = stats.binomtest(294, 300).proportion_ci(0.95, "exact")
    assert entry["low"] < 0.98 < entry["high"] <= 1.0
    assert 0.98 - entry["low"] > entry["high"] - 0.98
    assert 0.98 - exact.low > exact.high - 0.98  # the independent interval leans the same way
    assert abs(entry["low"] - exact.low) < 0.01 and abs(entry["high"] - exact.high) < 0.01


def test_resampling_keeps_the_label_strata():
    """Real ACC 99%, fake ACC 50%: a resample that keeps 500 reals and 500 fakes has ACC variance
    (500 x .99 x .01 + 500 x .5 x .5) / 1000^2; one that resampled the 1,000 images ignoring their labels
    would have .745 x .255 / 1000, 21% more spread."""
    labels, logits = _fixed_accuracy(500, 495, 500, 250)
    entry = _interval(labels, logits, "acc", resamples=6000)
    stratified_sd = math.sqrt(500 * 0.99 * 0.01 + 500 * 0.25) / 1000
    ratio = (entry["high"] - entry["low"]) / (2 * stats.norm.ppf(0.975) * stratified_sd)
    assert 0.93 < ratio < 1.07, ratio
    # and every resample has both classes: AP and AUC are defined in all of them, with 10 fakes among 1,000
    labels, logits = _generator(np.random.default_rng(1), 990, 10)
    options = U.UncertaintyOptions(resamples=300)
    boot = U.bootstrap_generator(labels, logits, options, "s/g")
    assert np.isfinite(boot.replicates).all()


# --- AUC: DeLong's standard error ----------------------------------------------------------------------


def _delong_by_hand(labels, scores):
    """DeLong's variance with the kernel written out pair by pair (no ranks)."""
    reals, fakes = scores[labels == 0], scores[labels == 1]
    kernel = (fakes[:, None] > reals[None, :]) + 0.5 * (fakes[:, None] == reals[None, :])
    v10, v01 = kernel.mean(axis=1), kernel.mean(axis=0)
    return kernel.mean(), v10.var(ddof=1) / fakes.size + v01.var(ddof=1) / reals.size


def test_delong_matches_the_pairwise_formula_and_sklearn():
    rng = np.random.default_rng(5)
    labels, a = _generator(rng, 60, 45, decimals=1)
    b = a + rng.normal(0, 1, a.size)
    aucs, covariance = U.delong(labels, a, b)
    for i, scores in enumerate((a, b)):
        auc, variance = _delong_by_hand(labels, scores)
        assert aucs[i] == pytest.approx(auc, abs=1e-12) == pytest.approx(roc_auc_score(labels, scores))
        assert covariance[i, i] == pytest.approx(variance, rel=1e-10)
    reals, fakes = labels == 0, labels == 1
    ka = (a[fakes][:, None] > a[reals][None]) + 0.5 * (a[fakes][:, None] == a[reals][None])
    kb = (b[fakes][:, None] > b[reals][None]) + 0.5 * (b[fakes][:, None] == b[reals][None])
    by_hand = (np.cov(ka.mean(1), kb.mean(1))[0, 1] / fakes.sum() + np.cov(ka.mean(0), kb.mean(0))[0, 1] / reals.sum())
    assert covariance[0, 1] == pytest.approx(by_hand, rel=1e-10)


def test_auc_interval_width_agrees_with_delong():
    labels, logits = _generator(np.random.default_rng(7), 400, 400, shift=1.0)
    options = U.UncertaintyOptions(resamples=4000)
    boot = U.bootstrap_generator(labels, logits, options, "s/g", prob_precision="float64")
    column = boot.column("auc")
    _, covariance = U.delong(labels, logits)
    delong_se = math.sqrt(covariance[0, 0])
    assert boot.replicates[:, column].std() == pytest.approx(delong_se, rel=0.08)
    entry = boot.entries(options)["auc"]
    assert entry["high"] - entry["low"] == pytest.approx(2 * 1.96 * delong_se, rel=0.1)


# --- suite means: generators resampled independently ---------------------------------------------------


def test_suite_mean_interval_matches_a_hand_computed_example():
    """Generator A: 90/100 reals and 80/100 fakes right (ACC 0.85); B: 50/50 and 25/50 (ACC 0.75). The
    mean 0.80 has variance (Var_A + Var_B) / 4 with Var_A = (100 x .9 x .1 + 100 x .8 x .2) / 200^2 =
    6.25e-4 and Var_B = (0 + 50 x .5 x .5) / 100^2 = 1.25e-3: sd 0.02165, 95% interval about 0.80 +- 0.0424.
    Pooling the 300 images instead would give 0.817 and a narrower interval."""
    frames = []
    for name, counts in (("A", (100, 90, 100, 80)), ("B", (50, 50, 50, 25))):
        labels, logits = _fixed_accuracy(*counts)
        frames.append(pd.DataFrame({"suite": "s", "generator": name, "label": labels, "logit": logits}))
    options = U.UncertaintyOptions(resamples=6000)
    blocks = U.bootstrap_run(pd.concat(frames), options, prob_precision="float64").blocks(["s"], {"s": ["A", "B"]})
    mean = blocks["suites"]["s"]["mean"]["acc"]
    half = 1.96 * math.sqrt((6.25e-4 + 1.25e-3) / 4)
    assert mean["low"] == pytest.approx(0.80 - half, abs=0.005)
    assert mean["high"] == pytest.approx(0.80 + half, abs=0.005)
    assert blocks["mean"]["acc"] == mean  # one suite: the run's mean is the suite's


# --- options, seeds, methods ---------------------------------------------------------------------------


def test_the_seed_decides_the_resamples_and_is_recorded():
    labels, logits = _generator(np.random.default_rng(2), 80, 80)
    first = _interval(labels, logits, "ap", seed=11)
    assert _interval(labels, logits, "ap", seed=11) == first
    others = [_interval(labels, logits, "ap", seed=s) for s in (12, 13)]
    assert all(other != first for other in others)
    assert U.UncertaintyOptions(seed=11).describe()["seed"] == 11


@pytest.mark.parametrize("kwargs,message", [
    ({"resamples": 99}, "at least 100"), ({"level": 1.0}, "between 0 and 1"), ({"level": 0}, "between 0 and 1"),
    ({"method": "basic"}, "percentile, bca"), ({"seed": -1}, ">= 0"),
])
def test_bad_options_are_usage_errors(kwargs, message):
    with pytest.raises(BenchError, match=message):
        U.UncertaintyOptions(**kwargs)


def test_bca_agrees_with_scipy_bootstrap():
    """scipy.stats.bootstrap with two samples (reals, fakes) resamples them apart, as the strata here, and
    its BCa pools their jackknife values as this module does for a suite mean."""
    rng = np.random.default_rng(4)
    labels, logits = _generator(rng, 60, 60, shift=3.0)
    reals, fakes = logits[labels == 0], logits[labels == 1]

    def auc(r, f, axis=-1):
        return stats.mannwhitneyu(f, r, axis=axis).statistic / (r.shape[axis] * f.shape[axis])

    reference = stats.bootstrap((reals, fakes), auc, method="BCa", n_resamples=8000, random_state=1)
    ours = _interval(labels, logits, "auc", resamples=8000, method="bca", prob_precision="float64")
    percentile = _interval(labels, logits, "auc", resamples=8000, prob_precision="float64")
    ci = reference.confidence_interval
    assert ours["low"] == pytest.approx(ci.low, abs=0.006)
    assert ours["high"] == pytest.approx(ci.high, abs=0.006)
    assert abs(percentile["low"] - ci.low) > abs(ours["low"] - ci.low)  # BCa moved the interval, as scipy's


# --- absent intervals have a reason --------------------------------------------------------------------


def test_small_or_missing_classes_get_no_interval_with_a_reason():
    rng = np.random.default_rng(8)
    frames = []
    for name, (n_real, n_fake) in (("big", (60, 60)), ("few-fakes", (60, 8)), ("reals-only", (40, 0))):
        labels, logits = _generator(rng, n_real, n_fake)
        frames.append(pd.DataFrame({"suite": "s", "generator": name, "label": labels, "logit": logits}))
    options = U.UncertaintyOptions(resamples=200)
    blocks = U.bootstrap_run(pd.concat(frames), options).blocks(["s"], {"s": ["big", "few-fakes", "reals-only"]})
    generators = blocks["suites"]["s"]["generators"]
    assert generators["big"]["ap"]["low"] is not None
    few = generators["few-fakes"]
    assert few["ap"] == {"low": None, "high": None,
                         "reason": "8 fake images, fewer than the 10 per class a bootstrap needs"}
    assert few["r_acc"]["low"] is not None  # reads the 60 reals only
    only = generators["reals-only"]
    assert only["ap"]["reason"] == "no fake images: ap is undefined"
    assert only["acc"]["low"] is not None and only["r_acc"]["low"] is not None
    mean = blocks["suites"]["s"]["mean"]
    assert mean["ap"]["low"] is None and "few-fakes" in mean["ap"]["reason"]
    assert mean["r_acc"]["low"] is not None


def test_a_boundary_value_says_the_bootstrap_sees_no_spread():
    labels, logits = _fixed_accuracy(50, 50, 50, 50)
    entry = _interval(labels, logits, "acc")
    assert entry["low"] == entry["high"] == 1.0
    assert "no spread" in entry["note"]


# --- spread over generators ----------------------------------------------------------------------------


def test_spread_is_the_population_sd_and_the_worst_generator():
    values = {"a": 0.9, "b": 0.7, "c": 0.8, "d": None}
    assert U.spread(values) == {"std": pytest.approx(np.std([0.9, 0.7, 0.8])), "worst": "b", "worst_value": 0.7,
                                "generators": 3}
    assert U.spread({"a": 0.1, "b": 0.3}, higher_is_better=False)["worst"] == "b"  # EER: higher is worse


def test_bca_means_and_shared_reals_note():
    """A suite mean under BCa pools its generators' jackknife values; reals that belong to two generators
    (one pool of reals) are resampled independently in each, which the mean's intervals say."""
    rng = np.random.default_rng(9)
    reals = rng.normal(0, 1.5, 60)
    frames = []
    for name, shift in (("a", 1.0), ("b", 2.5)):
        fakes = rng.normal(shift, 1.5, 60)
        frames.append(pd.DataFrame({"suite": "s", "generator": name, "label": [0] * 60 + [1] * 60,
                                    "logit": np.r_[reals, fakes],
                                    "path": [f"0_real/{i}.png" for i in range(60)] + [f"{name}/1_fake/{i}.png"
                                                                                      for i in range(60)]}))
    options = U.UncertaintyOptions(resamples=1000, method="bca")
    blocks = U.bootstrap_run(pd.concat(frames), options, prob_precision="float64").blocks(["s"], {"s": ["a", "b"]})
    mean = blocks["suites"]["s"]["mean"]["auc"]
    estimates = [metrics_from_logits(f["label"], f["logit"], prob_precision="float64")["auc"] for f in frames]
    assert mean["low"] < np.mean(estimates) < mean["high"]
    assert "60 real images belong to several generators" in mean["note"]
    assert "note" not in blocks["suites"]["s"]["generators"]["a"]["auc"]
