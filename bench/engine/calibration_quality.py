"""How well a detector's probabilities mean what they say, from the stored logits: expected calibration
error, Brier score, negative log-likelihood, the log-likelihood-ratio cost, and a reliability diagram's
bins. A detector can rank real below fake perfectly (AP 100) and still call every photograph fake at 0.5;
these numbers say how far its probabilities are from frequencies.

- `ece`: the fake-probability is binned into `bins` equal-width bins on [0, 1] (default 15, as Guo et al.
  2017); ECE is the image-weighted mean over the bins of |share of fakes - mean probability|. Bins follow
  scikit-learn's `calibration_curve(strategy="uniform")`: a probability on an inner edge falls in the
  lower bin, so the reliability diagram drawn from these bins is the one scikit-learn would draw.
- `brier`: mean squared difference between the fake-probability and the label (scikit-learn's
  `brier_score_loss`).
- `nll`: mean negative log-likelihood of the labels, in nats, computed from the logit itself (log(1 +
  e^-logit) for a fake), so a confident mistake at logit 60 costs 60 instead of being clipped.
- `cllr`: the log-likelihood-ratio cost in bits (Brummer and du Preez 2006) at equal class priors:
  (mean over fakes of log2(1 + e^-s) + mean over reals of log2(1 + e^s)) / 2, reading the logit s as a
  log-likelihood ratio. 0 is perfect, 1 is a detector that always says "don't know" (s = 0); above 1 its
  scores mislead. Needs both classes.

The probabilities are the float64 sigmoid of the logits (the float32 ties of the official code move these
numbers by less than 1e-7). Every value is computed once here; metrics.json stores them per generator
(`calibration_quality`, with `calibration_quality_cal` for a fitted calibration map) and the reliability
bins per suite and run (`reliability`), which the report draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_BINS = 15
QUALITY_KEYS = ("ece", "brier", "nll", "cllr")
DISPLAY = {"ece": "ECE", "brier": "Brier", "nll": "NLL", "cllr": "Cllr"}
LOWER_IS_BETTER = dict.fromkeys(QUALITY_KEYS, True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """float64 sigmoid without overflow warnings for any finite logit."""
    logits = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -logits))


def bin_index(probs: np.ndarray, bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.searchsorted(edges[1:-1], probs, side="left")  # as sklearn.calibration.calibration_curve


def reliability(labels, probs, bins: int = DEFAULT_BINS) -> dict:
    """Per equal-width bin: how many images, their mean fake-probability and the share that are fake
    (null for an empty bin), and the ECE of the images pooled (the diagram's own number)."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    index = bin_index(probs, bins)
    count = np.bincount(index, minlength=bins)
    prob_sum = np.bincount(index, weights=probs, minlength=bins)
    fake_sum = np.bincount(index, weights=labels, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.where(count > 0, prob_sum / count, np.nan)
        share = np.where(count > 0, fake_sum / count, np.nan)
    block = {"bins": bins, "edges": np.linspace(0.0, 1.0, bins + 1).tolist(), "count": count.astype(int).tolist(),
             "mean_prob": [None if math.isnan(v) else float(v) for v in mean_prob],
             "frac_fake": [None if math.isnan(v) else float(v) for v in share]}
    block["ece"] = ece_from_bins(block)
    return block


def ece_from_bins(block: dict) -> float:
    total = sum(block["count"])
    if not total:
        return math.nan
    return float(sum(n * abs(f - p) for n, f, p in zip(block["count"], block["frac_fake"], block["mean_prob"])
                     if n) / total)


def ece(labels, probs, bins: int = DEFAULT_BINS) -> float:
    return ece_from_bins(reliability(labels, probs, bins))


def brier(labels, probs) -> float:
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    return float(np.mean((probs - labels) ** 2)) if labels.size else math.nan


def nll(labels, logits) -> float:
    """Mean negative log-likelihood in nats, from the logits (log(1 + e^-l) for a fake, log(1 + e^l) for
    a real)."""
    labels = np.asarray(labels).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    if not labels.size:
        return math.nan
    signed = np.where(labels == 1, -logits, logits)
    return float(np.mean(np.logaddexp(0.0, signed)))


def cllr(labels, llrs) -> float:
    """Log-likelihood-ratio cost in bits at equal priors; NaN without both classes."""
    labels = np.asarray(labels).reshape(-1)
    llrs = np.asarray(llrs, dtype=np.float64).reshape(-1)
    fake, real = llrs[labels == 1], llrs[labels == 0]
    if not (fake.size and real.size):
        return math.nan
    return float((np.mean(np.logaddexp(0.0, -fake)) + np.mean(np.logaddexp(0.0, real))) / (2 * math.log(2)))


def quality(labels, logits, bins: int = DEFAULT_BINS) -> dict:
    """ECE, Brier, NLL and Cllr of one generator's logits (raw, or a calibration map's log-odds)."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    probs = sigmoid(logits)
    return {"ece": ece(labels, probs, bins), "brier": brier(labels, probs), "nll": nll(labels, logits),
            "cllr": cllr(labels, logits), "bins": bins}


def mean_quality(blocks: Sequence[dict]) -> dict:
    """Unweighted mean over generators of each value (leaving out the undefined), as the metrics' means."""
    blocks = [b for b in blocks if b]
    if not blocks:
        return {}
    result = {}
    for key in QUALITY_KEYS:
        values = [b[key] for b in blocks if b.get(key) is not None and not math.isnan(b[key])]
        result[key] = float(np.mean(values)) if values else math.nan
    result["bins"] = blocks[0]["bins"]
    return result


# ------------------------------------------------------------------------------------------ metrics.json


def _labels_logits(rows) -> tuple[np.ndarray, np.ndarray]:
    return rows["label"].to_numpy(), rows["logit"].to_numpy(dtype=np.float64)


def _quality_of(rows, bins: int, calibration) -> dict:
    labels, logits = _labels_logits(rows)
    block = {"calibration_quality": quality(labels, logits, bins)}
    if calibration is not None and calibration.has_map:
        block["calibration_quality_cal"] = quality(labels, calibration.log_odds(logits), bins)
    return block


def _reliability_of(rows, bins: int, calibration) -> dict:
    labels, logits = _labels_logits(rows)
    block = {"reliability": reliability(labels, sigmoid(logits), bins)}
    if calibration is not None and calibration.has_map:
        block["reliability_cal"] = reliability(labels, sigmoid(calibration.log_odds(logits)), bins)
    return block


def _mean_of(per_generator: list[dict]) -> dict:
    block = {"calibration_quality": mean_quality([m.get("calibration_quality") for m in per_generator])}
    if any("calibration_quality_cal" in m for m in per_generator):
        block["calibration_quality_cal"] = mean_quality([m.get("calibration_quality_cal") for m in per_generator])
    return block


def attach_quality(metrics: dict, scores, bins: int = DEFAULT_BINS, calibration=None) -> dict:
    """metrics.json with the calibration quality of every generator (`calibration_quality`, and
    `calibration_quality_cal` after a fitted map), its means, and the reliability bins of each suite's and
    the run's images pooled (`reliability`, `reliability_cal`). `scores`: scores.parquet's frame;
    `calibration`: a bench.engine.calibration.Calibration or None."""
    every = []
    for suite, block in metrics["suites"].items():
        in_suite = scores[scores["suite"] == suite]
        for generator, values in block["generators"].items():
            values.update(_quality_of(in_suite[in_suite["generator"] == generator], bins, calibration))
            every.append(values)
        block.setdefault("mean", {}).update(_mean_of(list(block["generators"].values())))
        block.update(_reliability_of(in_suite, bins, calibration))
    metrics.setdefault("mean", {}).update(_mean_of(every))
    metrics.update(_reliability_of(scores[scores["suite"].isin(list(metrics["suites"]))], bins, calibration))
    return metrics


def metrics_with_quality(metrics: dict, scores_reader) -> dict:
    """A run's metrics.json with the calibration quality computed now from its scores where the run was
    written before it existed (a copy; the folder is not changed)."""
    import copy

    if "ece" in (metrics.get("reliability") or {}):
        return metrics
    scores = scores_reader()
    if scores is None or len(scores) == 0:
        return metrics
    from bench.engine.calibration import Calibration

    recorded = metrics.get("calibration")
    calibration = Calibration.from_description(recorded) if recorded else None
    return attach_quality(copy.deepcopy(metrics), scores, DEFAULT_BINS, calibration)
