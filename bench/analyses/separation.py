"""What a feature space separates: numbers (silhouette, cross-validated k-NN accuracy) and a 2-D t-SNE.

Both numbers are computed in the detector's original feature space (the pooled vector its head reads),
with Euclidean distances and no rescaling, so they describe what the head sees rather than the picture:
- silhouette (scikit-learn ``silhouette_score``, real/fake as the two clusters): in [-1, 1], higher =
  the classes form tighter, better separated groups;
- k-NN accuracy (k = 10, uniform weights): stratified 5-fold cross-validation, shuffled with the seed;
  each fold's images are classified by their 10 nearest neighbours among the other four folds, and the
  mean and standard deviation over the folds are reported. 0.5 = chance on balanced data. On a small
  generator the folds drop to the smaller class's size and k to the smallest training split; the k and
  folds actually used are recorded beside each accuracy (`knn_k`, `folds`) and printed with it.
The t-SNE (scikit-learn, PCA initialisation, automatic learning rate, fixed seed) follows a PCA to 50
dimensions when the features have more, as is customary and as scikit-learn's documentation advises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KNN_K = 10
FOLDS = 5
PCA_DIM = 50


@dataclass
class Separation:
    n_real: int
    n_fake: int
    dim: int
    silhouette: float | None
    knn_accuracy: float | None
    knn_accuracy_std: float | None
    folds: int
    """The folds the k-NN accuracy was cross-validated over: FOLDS, fewer when a class has fewer images."""
    knn_k: int | None = None
    """The neighbours each image was classified by: KNN_K, fewer when the training folds are smaller."""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def separation(features: np.ndarray, labels: np.ndarray, *, k: int = KNN_K, folds: int = FOLDS,
               seed: int = 0) -> Separation:
    """Silhouette and cross-validated k-NN accuracy of real (0) vs fake (1); None where a class is too
    small for the number (silhouette needs 2 per class, k-NN needs one per fold and class)."""
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    n_real, n_fake = int((labels == 0).sum()), int((labels == 1).sum())
    smaller = min(n_real, n_fake)
    silhouette = float(silhouette_score(features, labels, metric="euclidean")) if smaller >= 2 else None
    folds = min(folds, smaller)
    knn = knn_std = used_k = None
    if folds >= 2:
        training_size = len(labels) - int(np.ceil(len(labels) / folds))
        used_k = min(k, training_size)
        classifier = KNeighborsClassifier(n_neighbors=used_k)
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        scores = cross_val_score(classifier, features, labels, cv=splitter, scoring="accuracy")
        knn, knn_std = float(scores.mean()), float(scores.std())
    return Separation(n_real, n_fake, int(features.shape[1]), silhouette, knn, knn_std, folds, used_k)


TSNE_THREADS = 1
"""OpenMP threads of the t-SNE. One: Barnes-Hut on a few thousand points is quick on one core, while its
OpenMP threads spin at every barrier when cores are shared (benchmarks/tsne.py: 600 points took 10-15 s
on one thread and 132 s on two, on a busy 2-core machine)."""


def tsne_2d(features: np.ndarray, *, seed: int = 0, perplexity: float = 30.0,
            threads: int | None = TSNE_THREADS) -> np.ndarray:
    """[N, D] -> [N, 2] t-SNE coordinates (PCA to 50 dimensions first when D > 50).

    ``threads=None`` leaves scikit-learn's OpenMP default (all cores)."""
    from contextlib import nullcontext

    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    features = np.asarray(features, dtype=np.float32)
    n = len(features)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {n}")
    if features.shape[1] > PCA_DIM and n > PCA_DIM:
        features = PCA(n_components=PCA_DIM, random_state=seed).fit_transform(features)
    # scikit-learn requires perplexity < n; keep the usual 30 when there are enough points
    perplexity = min(perplexity, (n - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    with threadpool_limits(threads) if threads else nullcontext():
        return tsne.fit_transform(features).astype(np.float32)
