"""bench.engine.metrics: agreement with scikit-learn, EER and oracle accuracy by hand, one-class behaviour."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from bench.engine.metrics import METRIC_KEYS, compute_metrics, mean_metrics

# probabilities from a coarse grid as well as anywhere in [0, 1], so that ties (and exactly 0.5) occur
probability = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.floats(0, 1))


def scored_rows(probabilities):
    return st.lists(st.tuples(st.integers(0, 1), probabilities), min_size=2, max_size=40).filter(
        lambda rows: len({label for label, _ in rows}) == 2
    )


scored = scored_rows(probability)
# on a grid, 1 - p keeps every tie and every order (1 - 1e-155 == 1 - 0 would merge two scores)
scored_on_grid = scored_rows(st.integers(0, 1000).map(lambda k: k / 1000))


def split(rows):
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


@settings(max_examples=50, deadline=None)
@given(scored)
def test_agrees_with_sklearn_and_official_accuracy(rows):
    labels, probs = split(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics(labels, probs)
    assert m["acc"] == pytest.approx(accuracy_score(labels, probs > 0.5))
    assert m["r_acc"] == pytest.approx(accuracy_score(labels[labels == 0], probs[labels == 0] > 0.5))
    assert m["f_acc"] == pytest.approx(accuracy_score(labels[labels == 1], probs[labels == 1] > 0.5))
    assert m["ap"] == pytest.approx(average_precision_score(labels, probs))
    assert m["auc"] == pytest.approx(roc_auc_score(labels, probs))
    assert (m["n_real"], m["n_fake"]) == (int((labels == 0).sum()), int((labels == 1).sum()))
    assert m["notes"] == []
    for key in METRIC_KEYS:
        assert 0.0 <= m[key] <= 1.0


@settings(max_examples=50, deadline=None)
@given(scored)
def test_oracle_accuracy_is_the_best_threshold(rows):
    labels, probs = split(rows)
    thresholds = [*np.unique(probs), math.inf]
    best = max(float(((probs >= t) == labels).mean()) for t in thresholds)
    m = compute_metrics(labels, probs)
    assert m["oracle_acc"] == pytest.approx(best)
    assert m["oracle_acc"] >= m["acc"] - 1e-12


@settings(max_examples=50, deadline=None)
@given(scored_on_grid)
def test_eer_of_reversed_scores_is_one_minus_eer(rows):
    labels, probs = split(rows)
    eer = compute_metrics(labels, probs)["eer"]
    assert 0.0 <= eer <= 1.0
    assert compute_metrics(labels, 1.0 - probs)["eer"] == pytest.approx(1.0 - eer)


@pytest.mark.parametrize(
    "labels,probs,eer,oracle",
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 0.0, 1.0),  # separable
        ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 1.0, 0.5),  # reversed: the oracle still cannot beat chance
        ([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5, 0.75),  # one pair swapped: FPR = FNR = 1/2 at 0.5
        ([0, 0, 0, 0, 1, 1, 1, 1], [0.5] * 8, 0.5, 0.5),  # all tied: the diagonal
        # a real and a fake tied at 0.6: ROC (0,0) (0,1/3) (1/2,2/3) (1/2,1) (1,1); FNR - FPR goes from 2/3
        # to -1/6 on the diagonal segment, crossing 0.8 of the way along: FPR = FNR = 0.4
        ([0, 0, 1, 1, 1], [0.6, 0.2, 0.9, 0.6, 0.4], 0.4, 0.8),
    ],
)
def test_eer_and_oracle_by_hand(labels, probs, eer, oracle):
    m = compute_metrics(labels, probs)
    assert m["eer"] == pytest.approx(eer)
    assert m["oracle_acc"] == pytest.approx(oracle)


def test_threshold_is_strictly_greater_as_the_official_code():
    m = compute_metrics([0, 1], [0.5, 0.5])
    assert m["r_acc"] == 1.0 and m["f_acc"] == 0.0 and m["acc"] == 0.5
    assert compute_metrics([0, 1], [0.5, 0.5], threshold=0.4)["f_acc"] == 1.0


@pytest.mark.parametrize("labels,present", [([0, 0, 0], "real"), ([1, 1], "fake")])
def test_one_class_gives_nan_and_a_note_without_warnings(labels, present):
    probs = [0.2, 0.7, 0.9][: len(labels)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics(labels, probs)
    for key in ("ap", "auc", "eer", "oracle_acc"):
        assert math.isnan(m[key])
    if present == "real":
        assert m["acc"] == m["r_acc"] == pytest.approx(1 / 3) and math.isnan(m["f_acc"])
        assert (m["n_real"], m["n_fake"]) == (3, 0)
        assert "no fake images" in m["notes"][0]
    else:
        assert m["acc"] == m["f_acc"] == 0.5 and math.isnan(m["r_acc"])
        assert "no real images" in m["notes"][0]


def test_no_images():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = compute_metrics([], [])
    assert all(math.isnan(m[key]) for key in METRIC_KEYS)
    assert (m["n_real"], m["n_fake"]) == (0, 0) and m["notes"]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics([0, 1], [0.2, float("nan")])
    with pytest.raises(ValueError, match="labels"):
        compute_metrics([0, 2], [0.2, 0.3])
    with pytest.raises(ValueError, match="2 labels but 3"):
        compute_metrics([0, 1], [0.2, 0.3, 0.4])


def test_mean_is_unweighted_ignores_nan_and_sums_counts():
    a = compute_metrics([0, 1, 1, 1], [0.1, 0.9, 0.8, 0.2])  # acc 0.75
    b = compute_metrics([0, 0], [0.1, 0.9])  # acc 0.5, fake-side metrics NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = mean_metrics([a, b])
    assert mean["acc"] == pytest.approx((0.75 + 0.5) / 2)
    assert mean["ap"] == pytest.approx(a["ap"])  # b's NaN left out
    assert mean["f_acc"] == pytest.approx(a["f_acc"])
    assert (mean["n_real"], mean["n_fake"]) == (3, 3)
    assert any(note.startswith("ap: mean over 1 of 2") for note in mean["notes"])


def test_mean_of_all_nan_is_nan_and_json_nulls_are_accepted():
    only_real = compute_metrics([0], [0.3])
    from_json = {key: None for key in METRIC_KEYS} | {"n_real": 0, "n_fake": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = mean_metrics([only_real, from_json])
        empty = mean_metrics([])
    assert math.isnan(mean["ap"]) and math.isnan(mean["f_acc"])
    assert mean["acc"] == 1.0 and mean["n_fake"] == 2
    assert all(math.isnan(empty[key]) for key in METRIC_KEYS) and empty["n_real"] == 0


def test_probability_is_stable_for_extreme_logits():
    from bench.engine.metrics import probability

    assert probability(0.0) == 0.5
    assert probability(-800.0) == 0.0 and probability(800.0) == 1.0  # 1/(1+exp(800)) would overflow
    assert probability(-60.8191032409668) == pytest.approx(3.8601047948663935e-27, rel=1e-6)  # official reference
    assert math.isnan(probability(math.nan))


# --- the official probability precision (issue 11, item 1) ---------------------------------------------


def official_ap(labels, logits):
    """LFM/NPR validate.py: `model(x).sigmoid().flatten().tolist()` on float32 logits, then sklearn."""
    import torch

    y_pred = torch.tensor(logits, dtype=torch.float32).sigmoid().flatten().tolist()
    return average_precision_score(labels, y_pred), accuracy_score(labels, np.array(y_pred) > 0.5)


def test_default_ap_is_the_official_float32_formula_and_differs_from_float64_above_17():
    from bench.engine.metrics import metrics_from_logits

    rng = np.random.default_rng(3)
    # strongly fake images of both classes beyond a logit of 17, where float32 sigmoid is exactly 1.0
    labels = np.array([0] * 40 + [1] * 60)
    logits = np.concatenate([rng.normal(-5, 4, 30), rng.uniform(17.5, 60, 10),  # 10 reals called very fake
                             rng.normal(5, 4, 20), rng.uniform(17.5, 60, 40)])
    ap, acc = official_ap(labels, logits)
    default = metrics_from_logits(labels, logits)
    assert default["ap"] == ap  # exactly, not approximately
    assert default["acc"] == acc
    exact = metrics_from_logits(labels, logits, prob_precision="float64")
    assert exact["ap"] == pytest.approx(average_precision_score(labels, logits))  # the exact order
    assert abs(exact["ap"] - default["ap"]) > 0.01  # the ties above 17 move AP by points
    assert exact["acc"] == default["acc"]


def test_unknown_prob_precision_is_a_usage_error():
    from bench.engine.metrics import metrics_from_logits
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="float16"):
        metrics_from_logits([0, 1], [0.0, 1.0], prob_precision="float16")


# --- TPR at a fixed FPR, calibration, source breakdown -------------------------------------------------


def brute_force_tpr_at_fpr(labels, scores, max_fpr):
    """Every threshold t (each distinct score, and +inf for 'nothing is fake'), `score >= t` is fake."""
    real, fake = scores[labels == 0], scores[labels == 1]
    best = 0.0
    for t in [*np.unique(scores), math.inf]:
        if (real >= t).mean() <= max_fpr:
            best = max(best, float((fake >= t).mean()))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_tpr_at_fpr_against_brute_force(seed):
    from bench.engine.metrics import compute_metrics

    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    labels = rng.integers(0, 2, n)
    labels[:2] = (0, 1)
    scores = rng.normal(labels * 1.5, 1.0)
    if seed % 2:  # coarse scores: ties across the classes
        scores = np.round(scores, 1)
    m = compute_metrics(labels, scores, threshold=0.0)
    assert m["tpr_at_fpr1"] == brute_force_tpr_at_fpr(labels, scores, 0.01)
    assert m["tpr_at_fpr5"] == brute_force_tpr_at_fpr(labels, scores, 0.05)


def test_tpr_at_fpr_by_hand_at_exactly_the_allowed_rate():
    from bench.engine.metrics import compute_metrics

    # 100 reals, 5 of them (exactly 5%) and 1 of them (exactly 1%) above most fakes
    reals = np.r_[np.linspace(0, 1, 95), [3.5, 4.5, 5.5, 6.5, 7.5]]
    fakes = np.r_[np.linspace(2, 3, 6), [4.0, 5.0, 6.0, 7.0]]  # 10 fakes
    labels = np.r_[np.zeros(100, int), np.ones(10, int)]
    m = compute_metrics(labels, np.r_[reals, fakes], threshold=0.0)
    assert m["tpr_at_fpr1"] == 0.1  # at 1% FPR (t = 7, one real above) one fake (7.0) is caught
    assert m["tpr_at_fpr5"] == 1.0  # at 5% FPR (t = 2) every fake is caught


def test_threshold_keeping_real_is_the_smallest_with_at_most_5_percent_false_positives():
    from bench.engine.metrics import threshold_keeping_real

    rng = np.random.default_rng(1)
    for n in (1, 7, 20, 101, 333):
        reals = np.round(rng.normal(0, 3, n), 1)  # ties
        t = threshold_keeping_real(reals, 0.95)
        assert (reals > t).mean() <= 0.05
        lower = reals[reals < t]
        if lower.size:  # any lower candidate would call more than 5% of the reals fake
            assert (reals > lower.max()).mean() > 0.05


def test_eer_threshold_balances_the_two_error_rates():
    from bench.engine.metrics import eer_threshold

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 300)
    logits = rng.normal(labels * 2.0, 1.5)
    t = eer_threshold(labels, logits)
    fpr = (logits[labels == 0] > t).mean()
    fnr = (logits[labels == 1] <= t).mean()
    best = min(abs((logits[labels == 0] > c).mean() - (logits[labels == 1] <= c).mean()) for c in logits)
    assert abs(fpr - fnr) == pytest.approx(best)


def test_calibrated_accuracy_uses_the_logit_threshold():
    from bench.engine.metrics import metrics_from_logits

    labels = [0, 0, 0, 1, 1]
    logits = [-3.0, 1.0, 2.0, 1.5, 30.0]
    m = metrics_from_logits(labels, logits, calibrated_logit=1.2)
    assert (m["acc"], m["r_acc"], m["f_acc"]) == (pytest.approx(3 / 5), pytest.approx(1 / 3), 1.0)
    assert (m["acc_cal"], m["r_acc_cal"], m["f_acc_cal"]) == (pytest.approx(4 / 5), pytest.approx(2 / 3), 1.0)
    assert "acc_cal" not in metrics_from_logits(labels, logits)


def test_real_source_breakdown_from_paths():
    from bench.engine.metrics import real_source_breakdown

    paths = ["progan/car/0_real/a.png", "progan/car/0_real/b.png", "progan/cat/0_real/c.png",
             "progan/cat/0_real/c2.png", "progan/car/1_fake/d.png", "progan/cat/1_fake/e.png"]
    labels = [0, 0, 0, 0, 1, 1]
    logits = [-2.0, 3.0, -1.0, 0.0, 4.0, 5.0]  # a logit of 0 is prob 0.5: real (prob > 0.5 is fake)
    got = real_source_breakdown(paths, labels, logits, calibrated_logit=3.0)
    assert got == {"car": {"n_real": 2, "r_acc": 0.5, "r_acc_cal": 1.0}, "cat": {"n_real": 2, "r_acc": 1.0, "r_acc_cal": 1.0}}
    # one source folder: no breakdown
    assert real_source_breakdown(["g/0_real/a.png", "g/0_real/b.png", "g/1_fake/c.png"], [0, 0, 1], [0.0, 1.0, 2.0]) == {}


def test_metric_declaration_matches_what_is_computed():
    from bench.engine.metrics import CALIBRATED_KEYS, METRICS, metrics_from_logits

    both = metrics_from_logits([0, 1, 0, 1], [-1.0, 2.0, 0.5, -0.2], calibrated_logit=0.0)
    assert set(both) - {"notes"} == set(METRICS)
    only_real = metrics_from_logits([0, 0], [-1.0, 2.0], calibrated_logit=0.0)
    for name, declared in METRICS.items():
        if declared.format == "count":
            continue
        # a metric that needs both classes is undefined with one; the others (but fake ACC) are defined
        undefined = math.isnan(only_real[name])
        assert undefined == (declared.needs_both_classes or name in ("f_acc", "f_acc_cal")), name
    assert set(CALIBRATED_KEYS) == {"acc_cal", "r_acc_cal", "f_acc_cal"}
    assert not METRICS["eer"].higher_is_better and METRICS["ap"].higher_is_better
    assert METRICS["ap"].render(0.98765) == "98.8" and METRICS["n_real"].render(12) == "12"


def test_metrics_from_stored_scores_need_only_label_logit_and_path():
    import pandas as pd

    from bench.engine.metrics import metrics_from_logits, metrics_from_scores

    rows = pd.DataFrame({
        "path": ["g/a/0_real/1.png", "g/b/0_real/2.png", "g/a/1_fake/3.png", "g/b/1_fake/4.png"],
        "label": [0, 0, 1, 1], "logit": [-20.0, 25.0, 18.0, 30.0],
    })
    got = metrics_from_scores(rows)
    expected = metrics_from_logits(rows["label"], rows["logit"])
    assert {k: got[k] for k in expected if k != "notes"} == {k: v for k, v in expected.items() if k != "notes"}
    assert got["real_sources"] == {"a": {"n_real": 1, "r_acc": 1.0}, "b": {"n_real": 1, "r_acc": 0.0}}


# ------------------------------------------------------------- ties under the float32 sigmoid (issue 22)


def _hand_tpr_at_fpr(labels, scores, max_fpr):
    """The best TPR over thresholds t (score >= t is fake) whose FPR is at most max_fpr, by brute force."""
    reals, fakes = scores[labels == 0], scores[labels == 1]
    best = 0.0
    for t in np.unique(np.r_[scores, np.inf]):
        if (reals >= t).mean() <= max_fpr:
            best = max(best, (fakes >= t).mean())
    return best


def _hand_oracle_acc(labels, scores):
    return max(((scores >= t) == (labels == 1)).mean() for t in np.unique(np.r_[scores, np.inf]))


def test_logits_near_80_rank_the_non_paper_metrics_by_the_exact_order():
    from sklearn.metrics import roc_auc_score, roc_curve

    from bench.engine.metrics import TIE_NOTE_PREFIX, metrics_from_logits

    rng = np.random.default_rng(22)
    # the official checkpoint's regime: a third of the reals and most fakes beyond +17, where float32
    # sigmoid is exactly 1.0, so 50 reals and 114 fakes would all read "1.0"
    labels = np.array([0] * 150 + [1] * 150)
    logits = np.concatenate([rng.uniform(-80, -5, 100), rng.uniform(17, 60, 50),
                             rng.uniform(-30, 10, 36), rng.uniform(40, 80, 114)])
    assert (official_probabilities_of(logits)[logits > 17] == 1.0).all()  # the premise: ties at 1.0
    m = metrics_from_logits(labels, logits)
    ap32, acc32 = official_ap(labels, logits)
    assert m["ap"] == ap32 and m["acc"] == acc32  # the paper's columns stay the official float32 ones
    assert m["ap_exact"] == pytest.approx(average_precision_score(labels, logits))
    assert m["auc"] == pytest.approx(roc_auc_score(labels, logits))
    for key, target in (("tpr_at_fpr1", 0.01), ("tpr_at_fpr5", 0.05)):
        assert m[key] == pytest.approx(_hand_tpr_at_fpr(labels, logits, target))
    # what ranking the tied probabilities gave: 0 (the reals at 1.0 tie with every fake above them)
    assert _hand_tpr_at_fpr(labels, official_probabilities_of(logits), 0.01) == 0.0 < m["tpr_at_fpr1"]
    assert m["oracle_acc"] == pytest.approx(_hand_oracle_acc(labels, logits))
    # EER: between the error rates of the two ROC points (exact order) where FNR - FPR changes sign
    fpr, tpr, _ = roc_curve(labels, logits, drop_intermediate=False)
    after = int(np.argmax((1 - tpr) - fpr <= 0))
    bracket = [fpr[after - 1], 1 - tpr[after - 1], fpr[after], 1 - tpr[after]]
    assert min(bracket) <= m["eer"] <= max(bracket) and max(bracket) - min(bracket) < 0.05
    # the note carries both APs, rounded as tables print them
    assert abs(m["ap"] - m["ap_exact"]) > 0.001
    (note,) = [n for n in m["notes"] if n.startswith(TIE_NOTE_PREFIX)]
    assert f"{100 * ap32:.1f}" in note and f"{100 * average_precision_score(labels, logits):.1f}" in note
    assert "50 real and 114 fake" in note


def test_no_tie_note_when_ties_move_ap_by_less_than_a_tenth_or_under_float64():
    from bench.engine.metrics import metrics_from_logits

    labels = np.array([0, 0, 0, 1, 1, 1])
    logits = np.array([-3.0, -1.0, 0.5, 1.0, 30.0, 40.0])  # the two fakes tie at 1.0 with each other only
    m = metrics_from_logits(labels, logits)
    assert m["ap"] == m["ap_exact"] and m["notes"] == []
    tied = np.array([-3.0, -1.0, 50.0, 1.0, 30.0, 40.0])  # a real among them: AP moves
    assert metrics_from_logits(labels, tied)["notes"]
    assert metrics_from_logits(labels, tied, prob_precision="float64")["notes"] == []


def official_probabilities_of(logits):
    import torch

    return torch.tensor(logits, dtype=torch.float32).sigmoid().numpy()
