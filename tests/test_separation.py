"""Separation numbers against independent computations, and the t-SNE's contract."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.model_selection import StratifiedKFold

from bench.analyses.separation import separation, tsne_2d


def _blobs(n: int, dim: int, gap: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    real = rng.normal(0, 1, (n, dim))
    fake = rng.normal(0, 1, (n, dim))
    fake[:, 0] += gap
    return np.vstack([real, fake]), np.array([0] * n + [1] * n)


def _silhouette_by_hand(x, y):
    d = cdist(x, x)
    values = []
    for i in range(len(x)):
        same = (y == y[i])
        a = d[i, same].sum() / (same.sum() - 1)
        b = d[i, ~same].mean()
        values.append((b - a) / max(a, b))
    return float(np.mean(values))


def _knn_by_hand(x, y, k, folds, seed):
    accuracies = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        d = cdist(x[test], x[train])
        nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
        votes = y[train][nearest].mean(axis=1)
        accuracies.append(np.mean((votes > 0.5).astype(int) == y[test]))
    return float(np.mean(accuracies))


@pytest.mark.parametrize("gap", [0.0, 1.5, 6.0])
def test_numbers_match_hand_computations(gap):
    x, y = _blobs(40, 12, gap)
    found = separation(x, y, seed=3)
    assert found.n_real == found.n_fake == 40 and found.dim == 12 and found.folds == 5
    assert found.silhouette == pytest.approx(_silhouette_by_hand(x, y), abs=1e-9)
    # a 5-5 tie goes to the lower label (real) in scikit-learn's vote, as in the hand version (votes > 0.5)
    assert found.knn_accuracy == pytest.approx(_knn_by_hand(x, y, 10, 5, 3), abs=1e-12)


def test_separation_grows_with_the_gap():
    low = separation(*_blobs(50, 8, 0.0))
    high = separation(*_blobs(50, 8, 8.0))
    assert abs(low.silhouette) < 0.05 and 0.3 < low.knn_accuracy < 0.7
    assert high.silhouette > 0.4 and high.knn_accuracy == 1.0


def test_a_small_generator_records_the_k_and_folds_it_used():
    x, y = _blobs(3, 6, 1.0)
    x, y = np.vstack([x, x[:1] + 0.5]), np.append(y, 0)  # 4 real, 3 fake
    found = separation(x, y, seed=1)
    # 3 folds (the smaller class); the smallest training split holds 7 - ceil(7 / 3) = 4 images
    assert (found.folds, found.knn_k) == (3, 4)
    assert found.knn_accuracy == pytest.approx(_knn_by_hand(x, y, 4, 3, 1), abs=1e-12)
    assert found.as_dict()["knn_k"] == 4


def test_too_few_images_give_none_not_a_crash():
    found = separation(np.zeros((3, 4)) + np.arange(3)[:, None], np.array([0, 0, 1]))
    assert found.silhouette is None and found.knn_accuracy is None


def test_tsne_is_seeded_reduces_wide_features_and_keeps_clusters():
    x, y = _blobs(60, 120, 10.0)  # D > 50: the PCA step runs
    first, second = tsne_2d(x, seed=1), tsne_2d(x, seed=1)
    assert first.shape == (120, 2) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    assert separation(first, y).knn_accuracy == 1.0
    assert tsne_2d(x[:10], seed=1).shape == (10, 2)  # perplexity lowered below n
