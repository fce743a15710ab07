"""bench.metrics: agreement with scikit-learn, EER and oracle accuracy by hand, one-class behaviour."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from bench.metrics import METRIC_KEYS, compute_metrics, mean_metrics

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
    from bench.metrics import probability

    assert probability(0.0) == 0.5
    assert probability(-800.0) == 0.0 and probability(800.0) == 1.0  # 1/(1+exp(800)) would overflow
    assert probability(-60.8191032409668) == pytest.approx(3.8601047948663935e-27, rel=1e-6)  # official reference
    assert math.isnan(probability(math.nan))
