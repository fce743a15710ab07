"""Per-generator metrics from labels (0 real, 1 fake) and scores, and their means; the metric set,
declared once (`METRICS`), which every writer, renderer and checker reads.

The paper's two columns, as its test code computes them (LFM/NPR `validate.py`: the model's float32 logit,
`.sigmoid()` in float32, then scikit-learn):
- `acc`: accuracy of `prob > 0.5` (strictly greater, as the official `y_pred > 0.5`);
- `ap`: scikit-learn's `average_precision_score(labels, probs)`.
A float32 sigmoid is exactly 1.0 above a logit of about 16.6, so strongly fake images tie, and ties
change AP. That is the official number, so it is the default (`prob_precision="float32"`). With
`prob_precision="float64"` the paper's columns read the logit itself (the exact order; a float64
sigmoid would still tie above about 37) and ACC is `logit > 0`.

Kept apart from the paper's two, and always computed from the exact order of the logits whatever the
precision (they are no paper's numbers, and under the float32 ties a TPR at 1% FPR of a detector whose
logits reach +-80 reads 0 where the order says 8%): `auc` (ROC-AUC), `eer` (equal error rate, linearly
interpolated on the ROC curve), `oracle_acc` (the best accuracy any threshold reaches: separability free
of calibration), `tpr_at_fpr1` / `tpr_at_fpr5` (the share of fakes caught while at most 1% / 5% of the
real images are called fake), `ap_exact` (AP from the exact order: equal to `ap` unless ties move it), and,
when a calibrated threshold is given, `acc_cal` / `r_acc_cal` / `f_acc_cal` at that threshold (a logit).
`r_acc` / `f_acc` (accuracy on the real / fake images alone) split `acc` and read what it reads.

Ties that move AP: when `ap` and `ap_exact` differ by more than `TIE_NOTE_POINTS` (0.1 points), the
generator's `notes` carries `tie_note` (both values and how many images tie), and the run's metrics.json
lists it in its top-level `notes` (bench.engine.runner), which tables and the report print beside the number.

All values are fractions in [0, 1]. With one class missing the metrics that need both are NaN (with
only fakes AP would be a trivial 1.0), as is the accuracy of the missing class; `notes` says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# scikit-learn is imported where it is used: it takes seconds to import, and the metric declaration
# (METRICS, the choices of EvalConfig) is read by code that computes nothing

NAN = float("nan")

PROB_PRECISIONS = ("float32", "float64")
"""`float32`: the official validate.py (float32 sigmoid, ties above logit ~16.6); `float64`: exact order."""
DEFAULT_PROB_PRECISION = "float32"


@dataclass(frozen=True)
class Metric:
    """One metric of `metrics.json`: how it is named, shown, ordered and when it is defined."""

    name: str
    display: str
    higher_is_better: bool
    needs_both_classes: bool
    """Undefined (NaN) unless a generator has real and fake images."""
    format: str = "percent"
    """`percent` (a fraction shown x100 with one decimal) or `count`."""
    paper: bool = False
    """One of the paper's two columns (ACC, AP)."""
    calibrated: bool = False
    """Present only when a calibrated threshold was given."""
    description: str = ""

    def render(self, value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if self.format == "count":
            return str(int(value))
        return f"{100 * float(value):.1f}"


_DECLARED = (
    Metric("acc", "ACC", True, False, paper=True, description="accuracy of prob > 0.5"),
    Metric("ap", "AP", True, True, paper=True, description="scikit-learn average precision"),
    Metric("r_acc", "real ACC", True, False, description="accuracy on the real images (prob <= 0.5)"),
    Metric("f_acc", "fake ACC", True, False, description="accuracy on the fake images (prob > 0.5)"),
    Metric("ap_exact", "AP (exact order)", True, True,
           description="average precision from the exact order of the logits (no float32 ties)"),
    Metric("auc", "AUC", True, True, description="ROC-AUC"),
    Metric("eer", "EER", False, True, description="equal error rate"),
    Metric("oracle_acc", "oracle ACC", True, True, description="best accuracy over all thresholds"),
    Metric("tpr_at_fpr1", "TPR@1%FPR", True, True,
           description="share of fakes called fake while at most 1% of the reals are"),
    Metric("tpr_at_fpr5", "TPR@5%FPR", True, True,
           description="share of fakes called fake while at most 5% of the reals are"),
    Metric("acc_cal", "ACC@cal", True, False, calibrated=True, description="accuracy at the calibrated threshold"),
    Metric("r_acc_cal", "real ACC@cal", True, False, calibrated=True,
           description="real images' accuracy at the calibrated threshold"),
    Metric("f_acc_cal", "fake ACC@cal", True, False, calibrated=True,
           description="fake images' accuracy at the calibrated threshold"),
    Metric("n_real", "n real", True, False, format="count", description="real images scored"),
    Metric("n_fake", "n fake", True, False, format="count", description="fake images scored"),
)
METRICS: dict[str, Metric] = {m.name: m for m in _DECLARED}
"""The metric set, in the order tables and `metrics.json` list it."""

METRIC_KEYS = tuple(m.name for m in _DECLARED if m.format == "percent" and not m.calibrated)
"""The fraction-valued metrics of every generator (the calibrated ones come only with a threshold)."""
CALIBRATED_KEYS = tuple(m.name for m in _DECLARED if m.calibrated)
COUNT_KEYS = tuple(m.name for m in _DECLARED if m.format == "count")
PAPER_KEYS = tuple(m.name for m in _DECLARED if m.paper)
FPR_TARGETS = {"tpr_at_fpr1": 0.01, "tpr_at_fpr5": 0.05}
EXACT_ORDER_KEYS = ("ap_exact", "auc", "eer", "oracle_acc", *FPR_TARGETS)
"""Metrics read from the exact order of the logits whatever `prob_precision` (not the paper's)."""
TIE_NOTE_POINTS = 0.1
"""Ties that move AP by more than this many points (of 100) get a note and a warning."""
TIE_NOTE_PREFIX = "ties:"


def metric(name: str) -> Metric:
    from bench.errors import UnknownNameError

    if name not in METRICS:
        raise UnknownNameError("metric", name, METRICS)
    return METRICS[name]


def format_metric(name: str, value) -> str:
    """How tables print a metric value (fractions x100 with one decimal, counts as integers, NaN '-')."""
    return METRICS[name].render(value)


# ------------------------------------------------------------------------------------ probabilities


def probability(logit: float) -> float:
    """sigmoid(logit) in float64 without overflow for any finite logit; NaN for NaN (an unscored image)."""
    if math.isnan(logit):
        return math.nan
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    odds = math.exp(logit)  # exp of a negative number cannot overflow
    return odds / (1.0 + odds)


def check_precision(prob_precision: str) -> str:
    if prob_precision not in PROB_PRECISIONS:
        from bench.errors import BenchError

        raise BenchError(f"prob precision {prob_precision!r} is not one of {', '.join(PROB_PRECISIONS)}")
    return prob_precision


def official_probabilities(logits: Sequence[float] | np.ndarray) -> np.ndarray:
    """torch.sigmoid of the logits as float32, as the official validate.py computes `y_pred` (then
    `.tolist()`, which widens each float32 to a Python float without changing it)."""
    import torch  # the official formula is torch's float32 kernel; numpy's float32 exp differs by an ulp

    logits32 = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    return torch.sigmoid(logits32).numpy().astype(np.float64)


def scores_and_threshold(logits: Sequence[float] | np.ndarray, prob_precision: str = DEFAULT_PROB_PRECISION
                         ) -> tuple[np.ndarray, float]:
    """What the metrics read under a precision, and the threshold that means "prob > 0.5" for it:
    float32 -> (official float32 probabilities, 0.5); float64 -> (the logits, 0.0), the exact order."""
    check_precision(prob_precision)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    if prob_precision == "float32":
        return official_probabilities(logits), 0.5
    return logits, 0.0


# ----------------------------------------------------------------------------------- curve metrics


def equal_error_rate(labels: np.ndarray, probs: np.ndarray) -> float:
    """The rate where false-positive and false-negative rates meet on the ROC curve, interpolated
    linearly between the two ROC points that bracket the crossing."""
    from sklearn.metrics import roc_curve

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
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, probs, drop_intermediate=False)
    n_fake = int(labels.sum())
    n_real = len(labels) - n_fake
    correct = tpr * n_fake + (1.0 - fpr) * n_real
    return float(correct.max() / len(labels))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """The largest share of fakes with `score >= t` over the thresholds t at which at most `max_fpr` of
    the reals have `score >= t` (ROC points only, no interpolation: a threshold one could really use)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    allowed = fpr <= max_fpr + 1e-12  # the first ROC point (nothing called fake) always qualifies
    return float(tpr[allowed].max())


# --------------------------------------------------------------------------------- the metric set


def _fraction(hits: np.ndarray) -> float:
    return float(hits.mean()) if hits.size else NAN


def compute_metrics(labels: Sequence[int] | np.ndarray, probs: Sequence[float] | np.ndarray,
                    threshold: float = 0.5, *, ranking: Sequence[float] | np.ndarray | None = None) -> dict:
    """The metric set (fractions or NaN), n_real, n_fake and notes.

    `probs` are the scores the paper's columns read (fake-probabilities, or logits with `threshold=0`): ACC
    and the per-class accuracies use `score > threshold`, AP the order. `ranking` (default: `probs`) is
    what the metrics of `EXACT_ORDER_KEYS` rank by: the logits, so that ties of `probs` do not move them."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    ranking = probs if ranking is None else np.asarray(ranking, dtype=np.float64).reshape(-1)
    if labels.shape != probs.shape or labels.shape != ranking.shape:
        raise ValueError(f"{labels.size} labels but {probs.size} probabilities and {ranking.size} ranking scores")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (fake); got {sorted(set(labels.tolist()) - {0, 1})[:5]}")
    if not (np.isfinite(probs).all() and np.isfinite(ranking).all()):
        raise ValueError(f"{int((~np.isfinite(probs)).sum() + (~np.isfinite(ranking)).sum())} scores are NaN or infinite")
    labels = labels.astype(np.int64)
    real, fake = labels == 0, labels == 1
    n_real, n_fake = int(real.sum()), int(fake.sum())
    result: dict = {key: NAN for key in METRIC_KEYS}
    predicted_fake = probs > threshold
    result.update(acc=_fraction(predicted_fake == fake), r_acc=_fraction(~predicted_fake[real]),
                  f_acc=_fraction(predicted_fake[fake]))
    result.update(n_real=n_real, n_fake=n_fake, notes=[])
    if n_real and n_fake:
        result["ap"] = float(average_precision_score(labels, probs))
        result["ap_exact"] = float(average_precision_score(labels, ranking))
        result["auc"] = float(roc_auc_score(labels, ranking))
        result["eer"] = equal_error_rate(labels, ranking)
        result["oracle_acc"] = oracle_accuracy(labels, ranking)
        for key, target in FPR_TARGETS.items():
            result[key] = tpr_at_fpr(labels, ranking, target)
        note = tie_note(result["ap"], result["ap_exact"], probs, labels)
        if note:
            result["notes"].append(note)
    elif not (n_real or n_fake):
        result["notes"].append("no images: every metric is undefined")
    else:
        missing = "real" if n_fake else "fake"
        both = ", ".join(m.name for m in _DECLARED if m.needs_both_classes)
        result["notes"].append(f"no {missing} images: {both} and {'r_acc' if n_fake else 'f_acc'} are undefined")
    return result


def tie_note(ap: float, ap_exact: float, probs: np.ndarray, labels: np.ndarray) -> str | None:
    """The note for ties that move AP by more than TIE_NOTE_POINTS, or None: both values and how many images
    share a probability with an image of the other class (at 1.0 for strongly fake ones under float32)."""
    if not abs(ap - ap_exact) * 100 > TIE_NOTE_POINTS:
        return None
    values, inverse, counts = np.unique(probs, return_inverse=True, return_counts=True)
    real_at = np.bincount(inverse, weights=(labels == 0), minlength=len(values))
    mixed = (counts > 1) & (real_at > 0) & (real_at < counts)
    tied = mixed[inverse]
    n_real, n_fake = int((tied & (labels == 0)).sum()), int((tied & (labels == 1)).sum())
    return (f"{TIE_NOTE_PREFIX} {n_real} real and {n_fake} fake images share a float32 probability with the other "
            f"class; AP {100 * ap:.1f} under the paper's float32 sigmoid (the official number), {100 * ap_exact:.1f} "
            "from the exact order of the logits (ap_exact)")


def metrics_from_logits(labels: Sequence[int] | np.ndarray, logits: Sequence[float] | np.ndarray, *,
                        prob_precision: str = DEFAULT_PROB_PRECISION,
                        calibrated_logit: float | None = None) -> dict:
    """The metric set from stored logits under a probability precision (see the module's docstring): the
    paper's columns under it, the others (`EXACT_ORDER_KEYS`) from the exact order of the logits.
    `calibrated_logit`: a threshold on the logit (`logit > t` is fake), e.g. from `calibrate_threshold`;
    it is compared with the logit itself, whatever the precision, so it means the same in both."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    scores, threshold = scores_and_threshold(logits, prob_precision)
    result = compute_metrics(labels, scores, threshold, ranking=logits)
    if calibrated_logit is not None:
        labels_arr = np.asarray(labels).reshape(-1).astype(np.int64)
        at_cal = logits > calibrated_logit
        real, fake = labels_arr == 0, labels_arr == 1
        result.update(acc_cal=_fraction(at_cal == fake), r_acc_cal=_fraction(~at_cal[real]),
                      f_acc_cal=_fraction(at_cal[fake]))
    return result


def mean_metrics(per_generator: Sequence[dict]) -> dict:
    """Unweighted mean of each metric over generators, leaving out NaN (all NaN -> NaN); counts summed.
    `notes` says which metrics were averaged over fewer generators than there are. Calibrated metrics
    are averaged when the generators carry them."""
    result: dict = {}
    notes = []
    keys = list(METRIC_KEYS) + [k for k in CALIBRATED_KEYS if any(k in m for m in per_generator)]
    for key in keys:
        values = [float(m[key]) for m in per_generator if m.get(key) is not None and not math.isnan(float(m[key]))]
        result[key] = float(np.mean(values)) if values else NAN
        if len(values) < len(per_generator):
            notes.append(f"{key}: mean over {len(values)} of {len(per_generator)} generators (the others undefined)")
    for key in COUNT_KEYS:
        result[key] = int(sum(int(m.get(key, 0)) for m in per_generator))
    if "ap" in result and "ap_exact" in result and any(_has_tie_note(m) for m in per_generator):
        notes.append(f"{TIE_NOTE_PREFIX} mean AP {100 * result['ap']:.1f} under the paper's float32 sigmoid, "
                     f"{100 * result['ap_exact']:.1f} from the exact order (ties move AP on "
                     f"{sum(_has_tie_note(m) for m in per_generator)} of {len(per_generator)} generators)")
    result["notes"] = notes
    return result


def _has_tie_note(metrics: dict) -> bool:
    return any(str(note).startswith(TIE_NOTE_PREFIX) for note in metrics.get("notes") or [])


# -------------------------------------------------------------------------------------- calibration

CALIBRATION_RULES = ("real95", "eer")
"""`real95`: the threshold that keeps 95% of the calibration set's real images real (needs reals only);
`eer`: the set's equal-error point (needs real and fake images)."""


def threshold_keeping_real(real_logits: Sequence[float] | np.ndarray, keep: float = 0.95) -> float:
    """The smallest logit t with at least `keep` of the reals at `logit <= t` (so called real by
    `logit > t`): on the calibration set, the false-positive rate is at most 1 - keep."""
    values = np.sort(np.asarray(real_logits, dtype=np.float64).reshape(-1))
    if values.size == 0:
        raise ValueError("no real images to calibrate on")
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1]; got {keep}")
    index = max(0, math.ceil(keep * values.size - 1e-9) - 1)
    return float(values[index])


def eer_threshold(labels: Sequence[int] | np.ndarray, logits: Sequence[float] | np.ndarray) -> float:
    """A logit threshold t (`logit > t` is fake) where the false-positive and false-negative rates on
    this set are closest: among the candidate thresholds (every distinct logit), the one minimising
    |FPR - FNR|, the lower one on a tie."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    real, fake = logits[labels == 0], logits[labels == 1]
    if real.size == 0 or fake.size == 0:
        raise ValueError("the EER point needs real and fake images")
    candidates = np.unique(np.concatenate([logits, [logits.min() - 1.0]]))
    false_pos = real.size - np.searchsorted(np.sort(real), candidates, side="right")  # reals with logit > t
    false_neg = np.searchsorted(np.sort(fake), candidates, side="right")  # fakes with logit <= t
    # |FPR - FNR| x n_real x n_fake, in integers: equal gaps compare equal (as fractions they can differ in
    # the last bit, 1/2 - 3/7 against 4/7 - 1/2, and float noise would break the tie instead of the rule)
    gap = np.abs(false_pos.astype(np.int64) * fake.size - false_neg.astype(np.int64) * real.size)
    return float(candidates[int(np.argmin(gap))])


def calibrate_threshold(labels: Sequence[int] | np.ndarray, logits: Sequence[float] | np.ndarray,
                        rule: str = "real95") -> float:
    """A logit threshold chosen on a calibration set by `rule` (see CALIBRATION_RULES)."""
    labels = np.asarray(labels).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    if rule == "real95":
        return threshold_keeping_real(logits[labels == 0], 0.95)
    if rule == "eer":
        return eer_threshold(labels, logits)
    from bench.errors import BenchError

    raise BenchError(f"calibration rule {rule!r} is not one of {', '.join(CALIBRATION_RULES)}")


# ---------------------------------------------------------------------------- where reals come from


def real_source(path: str) -> tuple[str, ...]:
    """The folders above `0_real` in a stored relative path (`progan/car/0_real/x.png` -> (progan, car))."""
    parts = path.replace("\\", "/").split("/")
    if "0_real" not in parts:
        return ()
    return tuple(parts[: parts.index("0_real")])


def real_source_breakdown(paths: Sequence[str], labels: Sequence[int] | np.ndarray,
                          logits: Sequence[float] | np.ndarray, *, prob_precision: str = DEFAULT_PROB_PRECISION,
                          calibrated_logit: float | None = None) -> dict[str, dict]:
    """One generator's real images grouped by their source folder (what differs between their paths
    above `0_real`, e.g. the ForenSynths category): n_real and r_acc (and r_acc_cal) per source.
    Empty when the reals come from one folder. Reads only the stored `path`, `label` and `logit`."""
    labels = np.asarray(labels).reshape(-1)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    scores, threshold = scores_and_threshold(logits, prob_precision)
    real_index = [i for i in range(len(paths)) if labels[i] == 0]
    sources = [real_source(paths[i]) for i in real_index]
    if not sources:
        return {}
    common = 0  # the folders every real image shares (the generator's own folder) say nothing
    while all(len(s) > common for s in sources) and len({s[common] for s in sources}) == 1:
        common += 1
    names = ["/".join(s[common:]) or "." for s in sources]
    if len(set(names)) < 2:
        return {}
    result: dict[str, dict] = {}
    for name in sorted(set(names)):
        rows = np.array([i for i, n in zip(real_index, names) if n == name])
        entry = {"n_real": int(rows.size), "r_acc": _fraction(scores[rows] <= threshold)}
        if calibrated_logit is not None:
            entry["r_acc_cal"] = _fraction(logits[rows] <= calibrated_logit)
        result[name] = entry
    return result


def metrics_from_scores(rows, *, prob_precision: str = DEFAULT_PROB_PRECISION,
                        calibrated_logit: float | None = None) -> dict:
    """One generator's metrics from its stored scores (a DataFrame with `label`, `logit` and `path`,
    as in scores.parquet): the metric set, plus `real_sources` when its reals come from several folders."""
    labels = rows["label"].to_numpy()
    logits = rows["logit"].to_numpy(dtype=np.float64)
    result = metrics_from_logits(labels, logits, prob_precision=prob_precision, calibrated_logit=calibrated_logit)
    sources = real_source_breakdown(rows["path"].tolist(), labels, logits, prob_precision=prob_precision,
                                    calibrated_logit=calibrated_logit)
    if sources:
        result["real_sources"] = sources
    return result


def shared_reals(scores) -> dict[str, int]:
    """Per suite, how many real images belong to more than one generator (a pool of reals, `0_real/` beside
    `1_fake/<generator>/`, is a row of each generator in scores.parquet); suites without such images are
    left out. `scores`: rows with suite, generator, path and label."""
    reals = scores[scores["label"] == 0]
    per_image = reals.groupby(["suite", "path"])["generator"].nunique()
    return {suite: int(n) for suite, n in (per_image > 1).groupby(level=0).sum().items() if n}


def distinct_images(rows) -> tuple[int, int]:
    """(reals, fakes) among score rows, each image (suite, path) once: a real of a shared pool is a row of
    every generator, and summing per-generator counts would count it once per generator."""
    images = rows.drop_duplicates(["suite", "path"])
    return int((images["label"] == 0).sum()), int((images["label"] == 1).sum())
