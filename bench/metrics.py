"""Per-generator metrics from labels (0 real, 1 fake) and fake-probabilities, and their means.

The paper's two columns, as its test code computes them:
- `acc`: accuracy of `prob > 0.5` (strictly greater, as the official `y_pred > 0.5`; a prob of exactly
  0.5 counts as real);
- `ap`: scikit-learn's `average_precision_score(labels, probs)`.
Kept apart from those: `r_acc` / `f_acc` (accuracy on the real / fake images alone, same threshold),
`auc` (ROC-AUC), `eer` (equal error rate, linearly interpolated on the ROC curve) and `oracle_acc` (the
best accuracy any threshold on `prob >= t` reaches: how separable the scores are, free of calibration).

All values are fractions in [0, 1]. With one class missing, `ap`, `auc`, `eer` and `oracle_acc` are NaN
(with only fakes AP would be a trivial 1.0, and the oracle a trivial 100%; neither says anything about
the detector), as is the accuracy of the missing class; `notes` says why. No sklearn warnings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

METRIC_KEYS = ("acc", "ap", "r_acc", "f_acc", "auc", "eer", "oracle_acc")
COUNT_KEYS = ("n_real", "n_fake")
NAN = float("nan")


def probability(logit: float) -> float:
    """sigmoid(logit) in float64 without overflow for any finite logit; NaN for NaN (an unscored image)."""
    if math.isnan(logit):
        return math.nan
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    odds = math.exp(logit)  # exp of a negative number cannot overflow
    return odds / (1.0 + odds)


def equal_error_rate(labels: np.ndarray, probs: np.ndarray) -> float:
    """The rate where false-positive and false-negative rates meet on the ROC curve, interpolated
    linearly between the two ROC points that bracket the crossing."""
    fpr, tpr, _ = roc_curve(labels, probs, drop_intermediate=False)
    fnr = 1.0 - tpr
    gap = fnr - fpr  # starts at 1 (nothing called fake), ends at -1 (everything called fake)
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0 or i == 0:
        return float(fpr[i])
    t = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def oracle_accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """The best accuracy of `prob >= t` over all thresholds t (each ROC point is one threshold)."""
    fpr, tpr, _ = roc_curve(labels, probs, drop_intermediate=False)
    n_fake = int(labels.sum())
    n_real = len(labels) - n_fake
    correct = tpr * n_fake + (1.0 - fpr) * n_real
    return float(correct.max() / len(labels))


def _fraction(hits: np.ndarray) -> float:
    return float(hits.mean()) if hits.size else NAN


def compute_metrics(labels: Sequence[int] | np.ndarray, probs: Sequence[float] | np.ndarray,
                    threshold: float = 0.5) -> dict:
    """acc, ap, r_acc, f_acc, auc, eer, oracle_acc (fractions or NaN), n_real, n_fake and notes."""
    labels = np.asarray(labels).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if labels.shape != probs.shape:
        raise ValueError(f"{labels.size} labels but {probs.size} probabilities")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (fake); got {sorted(set(labels.tolist()) - {0, 1})[:5]}")
    if not np.isfinite(probs).all():
        raise ValueError(f"{int((~np.isfinite(probs)).sum())} probabilities are NaN or infinite")
    labels = labels.astype(np.int64)
    predicted_fake = probs > threshold
    real, fake = labels == 0, labels == 1
    n_real, n_fake = int(real.sum()), int(fake.sum())
    result = {
        "acc": _fraction(predicted_fake == fake),
        "ap": NAN,
        "r_acc": _fraction(~predicted_fake[real]),
        "f_acc": _fraction(predicted_fake[fake]),
        "auc": NAN,
        "eer": NAN,
        "oracle_acc": NAN,
        "n_real": n_real,
        "n_fake": n_fake,
        "notes": [],
    }
    if n_real and n_fake:
        result["ap"] = float(average_precision_score(labels, probs))
        result["auc"] = float(roc_auc_score(labels, probs))
        result["eer"] = equal_error_rate(labels, probs)
        result["oracle_acc"] = oracle_accuracy(labels, probs)
    elif not (n_real or n_fake):
        result["notes"].append("no images: every metric is undefined")
    else:
        missing = "real" if n_fake else "fake"
        result["notes"].append(
            f"no {missing} images: ap, auc, eer, oracle_acc and {'r_acc' if n_fake else 'f_acc'} are undefined"
        )
    return result


def mean_metrics(per_generator: Sequence[dict]) -> dict:
    """Unweighted mean of each metric over generators, leaving out NaN (all NaN -> NaN); counts summed.
    `notes` says which metrics were averaged over fewer generators than there are."""
    result: dict = {}
    notes = []
    for key in METRIC_KEYS:
        values = [float(m[key]) for m in per_generator if m.get(key) is not None and not math.isnan(float(m[key]))]
        result[key] = float(np.mean(values)) if values else NAN
        if len(values) < len(per_generator):
            notes.append(f"{key}: mean over {len(values)} of {len(per_generator)} generators (the others undefined)")
    for key in COUNT_KEYS:
        result[key] = int(sum(int(m.get(key, 0)) for m in per_generator))
    result["notes"] = notes
    return result
