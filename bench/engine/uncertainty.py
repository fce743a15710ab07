"""Confidence intervals for every fraction metric, from the stored scores alone: a stratified bootstrap.

What is resampled. Within each generator, the real images and the fake images are resampled apart, each
with replacement and to its own count, so every resample keeps the generator's real/fake counts (the
metrics are defined per class, and a resample without fakes would have no AP). A suite's mean is the
unweighted mean over its generators (as the paper computes it), so its resample `b` is the mean of each
generator's own resample `b`: generators are resampled independently, a small generator contributes its
own (larger) spread and a large one cannot drown it. ACC@cal holds the calibrated threshold fixed: its
interval covers the test images' sampling only, not the calibration set's.

How. Each generator's logits are sorted once into groups of equal logit (ties stay together, as
scikit-learn treats them); the paper's columns read the run's precision (official float32 probabilities
tie where logits do not), whose groups are runs of consecutive logit groups, and the other ranking metrics
the exact order (bench.engine.metrics.EXACT_ORDER_KEYS). A resample is a vector of counts per group and
class, drawn as random indices and counted with one `bincount` for a whole chunk of resamples; from the
cumulative counts every metric of `bench.engine.metrics` follows with array arithmetic on all resamples
of the chunk at once: AP as
scikit-learn's step-wise sum of precision times the recall step, ROC-AUC as the Mann-Whitney count (ties
half), EER interpolated between the two ROC points around FPR = FNR, oracle ACC as the best ROC point,
TPR@FPR at the last ROC point within the FPR budget. Tests compare every metric with scikit-learn and
bench.engine.metrics on explicitly resampled data.

Memory. A chunk holds at most CELL_BUDGET cells (resamples x images, resamples x score groups) in each
of a few arrays, so the working memory is bounded whatever the suite's size: a generator of a million
images is processed one resample at a time instead of as a million x 2,000 matrix. What is kept grows
with the number of generators x resamples x metrics (38 x 2,000 x 12 floats = 7 MB), not with the images.
Time grows as images x resamples.

Intervals. `percentile` (default): the level's central quantiles of the resampled values. `bca`:
bias-corrected and accelerated (Efron 1987; as scipy.stats.bootstrap computes it), the bias from the share
of resamples below the estimate, the acceleration from a jackknife. The jackknife leaves out one image at
a time up to JACKKNIFE_UNITS images and, above that, one of JACKKNIFE_UNITS random blocks of images per
class (a grouped jackknife: the cube and square sums it needs keep their expectation, so the acceleration
estimate is unchanged in expectation while the cost stays bounded). For a suite mean the jackknife values
of all its generators are pooled, as scipy does for several samples.

An interval is absent, with a reason, where the metric is undefined or a class it reads has fewer than
MIN_PER_CLASS images (a bootstrap of a handful of images says little about the population). Where every
resample gives the same value (e.g. ACC 100%) the interval is that value with a note: the bootstrap
cannot see uncertainty at a boundary.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from bench.engine.metrics import (
    CALIBRATED_KEYS,
    DEFAULT_PROB_PRECISION,
    FPR_TARGETS,
    METRIC_KEYS,
    METRICS,
    scores_and_threshold,
    shared_reals,
)
from bench.errors import BenchError

METHODS = ("percentile", "bca")
DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 2000
DEFAULT_METHOD = "percentile"
DEFAULT_SEED = 0
MIN_RESAMPLES = 100
"""Fewer resamples cannot place a 95% interval's tails (2.5% of 100 is 2.5 values)."""
MIN_PER_CLASS = 10
"""A class with fewer images gets no interval on the metrics that read it."""
CELL_BUDGET = 1 << 20
"""Cells (resamples x images or score groups) per array of a chunk: ~8 MB of float64 each."""
JACKKNIFE_UNITS = 2000
"""BCa's jackknife leaves out single images up to this many images, blocks of images above."""

INTERVAL_KEYS = (*METRIC_KEYS, *CALIBRATED_KEYS)
"""The metrics that get an interval: every fraction of METRICS (the calibrated ones with a threshold)."""
_REAL_ONLY = {"r_acc", "r_acc_cal"}
_FAKE_ONLY = {"f_acc", "f_acc_cal"}
_EITHER = {"acc", "acc_cal"}  # read whichever classes are present


def check_options(level: float, resamples: int, method: str, seed: int) -> None:
    """BenchError (exit 2, before any work) for a level outside (0, 1), too few resamples, an unknown
    method or a negative seed."""
    problems = []
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        problems.append(f"--ci-level must be between 0 and 1 (e.g. 0.95); got {level!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < MIN_RESAMPLES:
        problems.append(f"--ci-resamples must be a whole number of at least {MIN_RESAMPLES}; got {resamples!r}")
    if method not in METHODS:
        problems.append(f"--ci-method must be one of {', '.join(METHODS)}; got {method!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        problems.append(f"--ci-seed must be a whole number >= 0; got {seed!r}")
    if problems:
        raise BenchError("; ".join(problems))


@dataclass(frozen=True)
class UncertaintyOptions:
    """How intervals are computed; recorded as metrics.json's `uncertainty` block."""

    level: float = DEFAULT_LEVEL
    resamples: int = DEFAULT_RESAMPLES
    method: str = DEFAULT_METHOD
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        check_options(self.level, self.resamples, self.method, self.seed)

    def describe(self) -> dict:
        return {"method": self.method, "level": self.level, "resamples": self.resamples, "seed": self.seed,
                "resampling": "bootstrap of the images within each generator, real and fake apart (each "
                              "resample keeps the generator's real/fake counts); a mean over generators "
                              "resamples each generator independently",
                "min_per_class": MIN_PER_CLASS}

    @classmethod
    def from_description(cls, block: dict | None) -> UncertaintyOptions | None:
        if not isinstance(block, dict):
            return None
        try:
            return cls(float(block["level"]), int(block["resamples"]), str(block["method"]), int(block["seed"]))
        except (KeyError, TypeError, ValueError, BenchError):
            return None

    def same_as(self, block: dict | None) -> bool:
        return self == UncertaintyOptions.from_description(block)


# ------------------------------------------------------------------------------------------ one generator


@dataclass
class Order:
    """How one ordering of a generator's scores groups them: groups of equal score (0 = the highest), and
    where each class's slots (the groups that hold images of that class) lie among them."""

    groups: int
    real_slot_group: np.ndarray
    """Each real slot's group, in score order (descending)."""
    fake_slot_group: np.ndarray
    reals_to: np.ndarray
    """Per group: how many real slots lie at or above it (an index into the real cumulative counts with a
    leading zero)."""
    fakes_to: np.ndarray
    shared_real: np.ndarray
    """Real and fake slots of the groups holding both classes (ties across the classes)."""
    shared_fake: np.ndarray
    fakes_above_real: np.ndarray
    """Per real slot (and one past the last): fake slots strictly above it."""

    @classmethod
    def of(cls, group: np.ndarray, n_groups: int, real: np.ndarray, fake: np.ndarray
           ) -> tuple[Order, np.ndarray, np.ndarray]:
        """The order of images whose group ids are `group`; also each real's and fake's slot."""
        real_groups, real_slot = np.unique(group[real], return_inverse=True)
        fake_groups, fake_slot = np.unique(group[fake], return_inverse=True)
        every = np.arange(n_groups)
        shared = np.intersect1d(real_groups, fake_groups)
        fakes_to = np.searchsorted(fake_groups, every, side="right")
        fakes_above = fakes_to[real_groups] - np.isin(real_groups, fake_groups)
        order = cls(n_groups, real_groups, fake_groups, np.searchsorted(real_groups, every, side="right"), fakes_to,
                    np.searchsorted(real_groups, shared), np.searchsorted(fake_groups, shared),
                    np.append(fakes_above, fake_groups.size))
        return order, real_slot.reshape(-1), fake_slot.reshape(-1)


@dataclass
class Prepared:
    """One generator's scores sorted once. Images are grouped by their logit (the exact order, which the
    metrics of EXACT_ORDER_KEYS read) and a resample is a vector of counts per exact group for each class;
    the paper's columns read the scores under the run's precision (float32 probabilities tie where logits
    do not), whose groups are runs of consecutive exact groups, summed from the same counts."""

    keys: tuple[str, ...]
    n_real: int
    n_fake: int
    exact: Order
    real_slot: np.ndarray
    """Each real image's slot in the exact order."""
    fake_slot: np.ndarray
    real_called_fake: int
    """How many real slots (from the top) score above the precision's threshold: the images called fake
    are a prefix of the slots, since the score rises with the logit."""
    fake_called_fake: int
    paper: Order | None = None
    """The order the paper's AP reads, where its ties merge exact groups (None: the same as `exact`)."""
    real_merge: np.ndarray | None = None
    """Where each paper real slot starts among the exact real slots (for np.add.reduceat)."""
    fake_merge: np.ndarray | None = None
    real_ok_cal: np.ndarray | None = None
    """Per real image: called real at the calibrated threshold (held fixed)."""
    fake_ok_cal: np.ndarray | None = None
    real_direct: bool = False
    """Image i of the class is in slot i (sorted, no tied logits): draws count without a lookup."""
    fake_direct: bool = False

    @property
    def real_slots(self) -> int:
        return self.exact.real_slot_group.size

    @property
    def fake_slots(self) -> int:
        return self.exact.fake_slot_group.size


def prepare(labels, logits, *, prob_precision: str = DEFAULT_PROB_PRECISION,
            calibrated_logit: float | None = None, keep_order: bool = False) -> Prepared:
    """Sort a generator's scores into groups of equal logit (the exact order) and of equal score under the
    precision (the paper's columns: official float32 probabilities or the logits themselves).

    Each class's images are put in score order (a resample draws images uniformly, so their order does
    not matter), which lets a resample without tied logits be counted without a lookup; `keep_order`
    keeps the given order instead, for paired resampling of two runs' scores of the same images."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    if not keep_order:
        order = np.argsort(-logits, kind="stable")
        labels, logits = labels[order], logits[order]
    scores, threshold = scores_and_threshold(logits, prob_precision)
    real, fake = labels == 0, labels == 1
    distinct, group = np.unique(-logits, return_inverse=True)  # ascending -logit: group 0 holds the highest
    exact, real_slot, fake_slot = Order.of(group.reshape(-1), distinct.size, real, fake)
    # the precision's score of each exact group (a non-decreasing function of the logit)
    group_score = np.empty(distinct.size)
    group_score[group.reshape(-1)] = scores
    keys = tuple(k for k in INTERVAL_KEYS if k not in CALIBRATED_KEYS or calibrated_logit is not None)
    prepared = Prepared(keys, int(real.sum()), int(fake.sum()), exact, real_slot, fake_slot,
                        int(np.count_nonzero(group_score[exact.real_slot_group] > threshold)),
                        int(np.count_nonzero(group_score[exact.fake_slot_group] > threshold)))
    paper_distinct, paper_group = np.unique(-group_score, return_inverse=True)
    if paper_distinct.size < distinct.size:  # ties under the precision that the logits do not have
        paper, _, _ = Order.of(paper_group.reshape(-1)[group.reshape(-1)], paper_distinct.size, real, fake)
        prepared.paper = paper
        prepared.real_merge = np.flatnonzero(np.r_[True, np.diff(paper_group.reshape(-1)[exact.real_slot_group]) != 0])
        prepared.fake_merge = np.flatnonzero(np.r_[True, np.diff(paper_group.reshape(-1)[exact.fake_slot_group]) != 0])
    if calibrated_logit is not None:
        prepared.real_ok_cal = logits[real] <= calibrated_logit
        prepared.fake_ok_cal = logits[fake] > calibrated_logit
    prepared.real_direct = bool(np.array_equal(real_slot, np.arange(prepared.n_real)))
    prepared.fake_direct = bool(np.array_equal(fake_slot, np.arange(prepared.n_fake)))
    return prepared


def _first_at_least(rows: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Per row of a (rows, k) array of non-negative integers, non-decreasing along each row: how many values
    are below the row's limit, i.e. the index of the first value >= it. One binary search over the rows
    laid end to end (each row shifted above the one before, so the whole is sorted)."""
    count, width = rows.shape
    if width == 0:
        return np.zeros(count, dtype=np.int64)
    limits = np.asarray(limits, dtype=np.int64)
    step = int(max(int(rows[:, -1].max()), int(limits.max()))) + 1
    shift = np.arange(count, dtype=np.int64) * step
    shifted = rows + shift[:, None]
    return np.searchsorted(shifted.ravel(), shift + limits, side="left") - np.arange(count) * width


def _cumulative(R: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative counts (integers: exact, and numpy sums them three times faster than floats) with a
    leading zero column: cum_r[:, order.reals_to[g]] = reals scoring >= group g."""
    cum_r = np.zeros((R.shape[0], R.shape[1] + 1), dtype=np.int64)
    np.cumsum(R, axis=1, out=cum_r[:, 1:])
    cum_f = np.zeros((F.shape[0], F.shape[1] + 1), dtype=np.int64)
    np.cumsum(F, axis=1, out=cum_f[:, 1:])
    return cum_r, cum_f


def _average_precision(order: Order, F: np.ndarray, cum_r: np.ndarray, cum_f: np.ndarray, n_f: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's AP (sum over thresholds of precision x recall step) for each row; also the reals at or
    above each fake slot's group (the false positives there)."""
    tp = cum_f[:, 1:]
    fp = np.take(cum_r, order.reals_to[order.fake_slot_group], axis=1)
    positives = np.add(tp, fp)
    np.maximum(positives, 1, out=positives)  # zero only where F and tp are zero too
    precision = np.divide(tp, positives)
    precision *= F
    return precision.sum(axis=1) / n_f, fp


def _fold(prep: Prepared, R: np.ndarray, F: np.ndarray, r_cal: np.ndarray | None = None,
          f_cal: np.ndarray | None = None) -> np.ndarray:
    """Every metric of each row of counts. R: (rows, real slots) counts of real images per exact group that
    holds reals; F: (rows, fake slots) likewise for fakes (integers); r_cal, f_cal: (rows,) images called
    right at the calibrated threshold. Returns (rows, len(prep.keys)); NaN where a class is missing."""
    rows = R.shape[0]
    out = np.full((rows, len(prep.keys)), np.nan)
    column = {key: i for i, key in enumerate(prep.keys)}

    def put(key: str, values) -> None:
        if key in column:
            out[:, column[key]] = values

    cum_r, cum_f = _cumulative(R, F)
    n_r, n_f = cum_r[:, -1].astype(np.float64), cum_f[:, -1].astype(np.float64)
    # the images called fake are the top slots of each class (the score rises with the logit)
    r_ok = n_r - cum_r[:, prep.real_called_fake]
    f_ok = cum_f[:, prep.fake_called_fake].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        put("acc", (r_ok + f_ok) / (n_r + n_f))
        put("r_acc", r_ok / n_r)
        put("f_acc", f_ok / n_f)
        if r_cal is not None:
            put("acc_cal", (r_cal + f_cal) / (n_r + n_f))
            put("r_acc_cal", r_cal / n_r)
            put("f_acc_cal", f_cal / n_f)
    if not (prep.n_real and prep.n_fake):
        return out
    order = prep.exact
    ap_exact, fp = _average_precision(order, F, cum_r, cum_f, n_f)
    put("ap_exact", ap_exact)
    if prep.paper is None:
        put("ap", ap_exact)
    else:  # the paper's ties merge runs of exact groups: their counts are sums of the exact ones
        F_paper = np.add.reduceat(F, prep.fake_merge, axis=1)
        R_paper = np.add.reduceat(R, prep.real_merge, axis=1)
        put("ap", _average_precision(prep.paper, F_paper, *_cumulative(R_paper, F_paper), n_f)[0])
    tp = cum_f[:, 1:]
    pairs = n_r * n_f
    # Mann-Whitney: each fake counts the reals strictly below it, and half the reals tied with it (in
    # integers: exact)
    ties = np.einsum("ij,ij->i", F[:, order.shared_fake], R[:, order.shared_real])
    put("auc", (pairs - np.einsum("ij,ij->i", F, fp) + 0.5 * ties) / pairs)
    # the best ROC point's accuracy: it lies at a fake slot's group or at the origin (everything real)
    work = np.subtract(tp, fp)
    put("oracle_acc", (np.maximum(work.max(axis=1), 0) + n_r) / (n_r + n_f))
    # TPR@FPR: the ROC points with fpr <= target are those before the first real slot whose cumulative
    # count passes target x n_r; the last of them has the largest tpr
    real_cum = cum_r[:, 1:]
    index = np.arange(rows)
    for key, target in FPR_TARGETS.items():
        first_over = _first_at_least(real_cum, np.floor((target + 1e-12) * n_r).astype(np.int64) + 1)
        put(key, cum_f[index, order.fakes_above_real[first_over]] / n_f)
    # EER: along the ROC points, tpr + fpr rises from 0 to 2; find the first point where it reaches 1
    # (FNR <= FPR), in exact integer arithmetic (cum_f n_r + cum_r n_f >= n_r n_f), and interpolate
    # between it and the point before, as bench.engine.metrics.equal_error_rate
    n_r_int, n_f_int = cum_r[:, -1:], cum_f[:, -1:]
    np.multiply(tp, n_r_int, out=work)
    work += fp * n_f_int
    pairs_int = (n_r_int * n_f_int)[:, 0]
    first_fake = _first_at_least(work, pairs_int)
    at_reals = np.take(cum_f, order.fakes_to[order.real_slot_group], axis=1) * n_r_int + real_cum * n_f_int
    first_real = _first_at_least(at_reals, pairs_int)
    group = np.minimum(np.append(order.fake_slot_group, order.groups)[first_fake],
                       np.append(order.real_slot_group, order.groups)[first_real])
    group = np.minimum(group, order.groups - 1)  # the last point (everything fake) always qualifies

    def point(g):
        g = np.maximum(g, 0)
        return cum_r[index, order.reals_to[g]], cum_f[index, order.fakes_to[g]]

    fp_at, tp_at = point(group)
    fp_before, tp_before = point(group - 1)
    fp_before = np.where(group > 0, fp_before, 0.0)
    tp_before = np.where(group > 0, tp_before, 0.0)
    gap_at = pairs - (tp_at * n_r + fp_at * n_f)  # (FNR - FPR) x n_r n_f: <= 0
    gap_before = pairs - (tp_before * n_r + fp_before * n_f)  # > 0
    step = gap_before / (gap_before - gap_at)
    put("eer", (fp_before + step * (fp_at - fp_before)) / n_r)
    return out


def _chunk_rows(prep: Prepared, wanted: int) -> int:
    widest = max(prep.n_real, prep.n_fake, 1)
    return max(1, min(wanted, CELL_BUDGET // widest))


def _counts(slots_of_draws: np.ndarray, n_slots: int) -> np.ndarray:
    """(rows, draws) slot ids -> (rows, slots) integer counts, with one bincount (fed int64: numpy's
    bincount converts any other integer type first, at several times the cost)."""
    rows = slots_of_draws.shape[0]
    offsets = (np.arange(rows, dtype=np.int64) * n_slots)[:, None]
    flat = np.bincount(np.add(slots_of_draws, offsets, dtype=np.int64).ravel(), minlength=rows * n_slots)
    return flat.reshape(rows, n_slots)


def _draw(rng: np.random.Generator, n: int, rows: int) -> np.ndarray:
    """(rows, n) indices in [0, n); the narrowest type the generator draws fastest (16 bits when it fits)."""
    if not n:
        return np.zeros((rows, 0), dtype=np.int64)
    dtype = np.uint16 if n <= 2**16 else np.int32 if n < 2**31 else np.int64
    return rng.integers(0, n, size=(rows, n), dtype=dtype)


def generator_rng(seed: int, key: str) -> np.random.Generator:
    """Each generator's own stream, from the seed and its `suite/generator` name: a generator's resamples
    do not depend on which other generators a run holds, or in which order they are visited."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([seed, digest]))


def resample(preps: Sequence[Prepared], resamples: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`resamples` stratified resamples of the same images through each of `preps` (one Prepared per run
    over the same images in the same order: a paired bootstrap; one for a plain one) -> per prep a
    (resamples, metrics) array."""
    first = preps[0]
    chunk = _chunk_rows(first, resamples)
    results = [np.empty((resamples, len(p.keys))) for p in preps]
    done = 0
    while done < resamples:
        rows = min(chunk, resamples - done)
        real_draws = _draw(rng, first.n_real, rows)
        fake_draws = _draw(rng, first.n_fake, rows)
        for prep, result in zip(preps, results):
            R = _counts(real_draws if prep.real_direct else prep.real_slot[real_draws], prep.real_slots)
            F = _counts(fake_draws if prep.fake_direct else prep.fake_slot[fake_draws], prep.fake_slots)
            r_cal = f_cal = None
            if prep.real_ok_cal is not None:
                r_cal = prep.real_ok_cal[real_draws].sum(axis=1, dtype=np.float64)
                f_cal = prep.fake_ok_cal[fake_draws].sum(axis=1, dtype=np.float64)
            result[done:done + rows] = _fold(prep, R, F, r_cal, f_cal)
        done += rows
    return results


def full_counts(prep: Prepared) -> tuple[np.ndarray, np.ndarray]:
    R = np.bincount(prep.real_slot, minlength=prep.real_slots).astype(np.int64)[None, :]
    F = np.bincount(prep.fake_slot, minlength=prep.fake_slots).astype(np.int64)[None, :]
    return R, F


def point_values(prep: Prepared) -> np.ndarray:
    """The metrics of the whole sample, through the same arithmetic as the resamples (BCa compares them)."""
    R, F = full_counts(prep)
    r_cal = f_cal = None
    if prep.real_ok_cal is not None:
        r_cal, f_cal = np.array([prep.real_ok_cal.sum()], float), np.array([prep.fake_ok_cal.sum()], float)
    return _fold(prep, R, F, r_cal, f_cal)[0]


def jackknife(prep: Prepared, rng: np.random.Generator) -> np.ndarray:
    """Leave-one-unit-out values (units, metrics): units are single images up to JACKKNIFE_UNITS images,
    else JACKKNIFE_UNITS random blocks split between the classes by their counts."""
    n = prep.n_real + prep.n_fake
    R_full, F_full = full_counts(prep)
    blocks = n > JACKKNIFE_UNITS
    pieces = []
    for is_real, slots, ok_cal in ((True, prep.real_slot, prep.real_ok_cal),
                                   (False, prep.fake_slot, prep.fake_ok_cal)):
        count = slots.size
        if count == 0:
            continue
        width = prep.real_slots if is_real else prep.fake_slots
        units = max(1, round(JACKKNIFE_UNITS * count / n)) if blocks else count
        unit_of = np.arange(count) if not blocks else rng.permutation(count) % units
        chunk = max(1, CELL_BUDGET // max(width, 1))
        for start in range(0, units, chunk):
            stop = min(units, start + chunk)
            chosen = (unit_of >= start) & (unit_of < stop)
            left_out = np.bincount((unit_of[chosen] - start) * width + slots[chosen],
                                   minlength=(stop - start) * width).reshape(stop - start, width)
            own = (R_full if is_real else F_full) - left_out
            other = np.repeat(F_full if is_real else R_full, stop - start, axis=0)
            R, F = (own, other) if is_real else (other, own)
            r_cal = f_cal = None
            if prep.real_ok_cal is not None:
                removed = np.bincount(unit_of[chosen] - start, weights=ok_cal[chosen].astype(float),
                                      minlength=stop - start)
                total_r, total_f = float(prep.real_ok_cal.sum()), float(prep.fake_ok_cal.sum())
                r_cal = (total_r - removed) if is_real else np.full(stop - start, total_r)
                f_cal = np.full(stop - start, total_f) if is_real else (total_f - removed)
            pieces.append(_fold(prep, R, F, r_cal, f_cal))
    return np.concatenate(pieces) if pieces else np.empty((0, len(prep.keys)))


# ------------------------------------------------------------------------------------------ intervals


def _percentile_of(values: np.ndarray, score: float) -> float:
    """Share of `values` below `score`, ties counted half (as scipy.stats.bootstrap's BCa)."""
    below = np.count_nonzero(values < score)
    at_or_below = np.count_nonzero(values <= score)
    return (below + at_or_below) / (2.0 * values.size)


def acceleration(deviations: np.ndarray) -> float:
    """BCa's acceleration from jackknife values (or their deviations from the estimate)."""
    d = np.mean(deviations) - deviations
    denominator = 6.0 * np.sum(d ** 2) ** 1.5
    return float(np.sum(d ** 3) / denominator) if denominator > 0 else 0.0


def interval(values: np.ndarray, estimate: float, options: UncertaintyOptions,
             jack: np.ndarray | None = None) -> tuple[float, float]:
    """(low, high) of one metric's resampled values at the options' level and method."""
    alpha = 1.0 - options.level
    if options.method == "percentile":
        low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
        return float(low), float(high)
    from scipy.special import ndtr, ndtri

    share = min(max(_percentile_of(values, estimate), 0.5 / values.size), 1 - 0.5 / values.size)
    z0 = ndtri(share)
    a = acceleration(jack) if jack is not None and jack.size > 1 else 0.0
    tails = []
    for z_alpha in (ndtri(alpha / 2), ndtri(1 - alpha / 2)):
        shifted = z0 + z_alpha
        tails.append(float(ndtr(z0 + shifted / (1 - a * shifted))))
    low, high = np.quantile(values, tails)
    return float(low), float(high)


def _entry(values: np.ndarray, estimate: float, options: UncertaintyOptions, jack: np.ndarray | None) -> dict:
    low, high = interval(values, estimate, options, jack)
    entry: dict = {"low": low, "high": high}
    if values.min() == values.max():
        entry["note"] = (f"every resample gave {100 * float(values[0]):.1f}%: at a boundary the bootstrap "
                         "sees no spread, which does not mean there is none")
    elif not low - 1e-12 <= estimate <= high + 1e-12:
        entry["note"] = ("the value lies outside its interval: the resampled values are biased (e.g. by tied "
                         "scores), which --ci-method bca corrects for")
    return entry


def absent(reason: str) -> dict:
    return {"low": None, "high": None, "reason": reason}


def _class_reason(key: str, n_real: int, n_fake: int) -> str | None:
    """Why `key` gets no interval for these class counts (None: it gets one)."""
    if key in _REAL_ONLY:
        read = [("real", n_real)]
    elif key in _FAKE_ONLY:
        read = [("fake", n_fake)]
    elif key in _EITHER:
        read = [(name, n) for name, n in (("real", n_real), ("fake", n_fake)) if n] or [("real", 0)]
    else:
        read = [("real", n_real), ("fake", n_fake)]
    for name, n in read:
        if n == 0:
            return f"no {name} images: {key} is undefined"
        if n < MIN_PER_CLASS:
            return f"{n} {name} images, fewer than the {MIN_PER_CLASS} per class a bootstrap needs"
    return None


@dataclass
class GeneratorBootstrap:
    """One generator's resampled metrics: what its intervals and every mean's intervals are made of."""

    key: str
    keys: tuple[str, ...]
    estimate: np.ndarray
    replicates: np.ndarray | None
    """(resamples, metrics); None when no metric could be resampled."""
    reasons: dict[str, str]
    """Metric -> why it has no interval."""
    jack: np.ndarray | None = None
    """BCa: jackknife deviations from the estimate, (units, metrics)."""

    def column(self, key: str) -> int:
        return self.keys.index(key)

    def entries(self, options: UncertaintyOptions) -> dict[str, dict]:
        result = {}
        for key in self.keys:
            if key in self.reasons:
                result[key] = absent(self.reasons[key])
                continue
            i = self.column(key)
            jack = None if self.jack is None else self.jack[:, i]
            result[key] = _entry(self.replicates[:, i], float(self.estimate[i]), options, jack)
        return result


def bootstrap_generator(labels, logits, options: UncertaintyOptions, key: str, *,
                        prob_precision: str = DEFAULT_PROB_PRECISION,
                        calibrated_logit: float | None = None) -> GeneratorBootstrap:
    """A generator's stratified bootstrap under `options`, its stream seeded by (options.seed, key)."""
    prep = prepare(labels, logits, prob_precision=prob_precision, calibrated_logit=calibrated_logit)
    estimate = point_values(prep)
    reasons = {}
    for i, metric in enumerate(prep.keys):
        reason = _class_reason(metric, prep.n_real, prep.n_fake)
        if reason is None and math.isnan(estimate[i]):
            reason = f"{metric} is undefined here"
        if reason is not None:
            reasons[metric] = reason
    if len(reasons) == len(prep.keys):
        return GeneratorBootstrap(key, prep.keys, estimate, None, reasons)
    rng = generator_rng(options.seed, key)
    replicates = resample([prep], options.resamples, rng)[0]
    jack = None
    if options.method == "bca":
        jack = jackknife(prep, rng) - estimate
    return GeneratorBootstrap(key, prep.keys, estimate, replicates, reasons, jack)


def mean_entries(boots: Sequence[GeneratorBootstrap], options: UncertaintyOptions) -> dict[str, dict]:
    """Intervals of the unweighted mean over generators (generators where a metric is undefined are left
    out of its mean, as bench.engine.metrics.mean_metrics does): resample b of the mean is the mean of
    each generator's resample b. Absent where a generator in the mean has no interval of its own."""
    keys = [k for k in INTERVAL_KEYS if any(k in b.keys for b in boots)]
    result = {}
    for key in keys:
        present = [b for b in boots if key in b.keys and not math.isnan(b.estimate[b.column(key)])]
        if not present:
            result[key] = absent(f"{key} is undefined for every generator")
            continue
        lacking = [b.key.split("/", 1)[-1] for b in present if key in b.reasons]
        if lacking:
            reasons = sorted({b.reasons[key] for b in present if key in b.reasons})
            result[key] = absent(f"no interval for {', '.join(lacking)} ({'; '.join(reasons)}), so none for the mean")
            continue
        columns = [b.column(key) for b in present]
        values = np.mean([b.replicates[:, c] for b, c in zip(present, columns)], axis=0)
        estimate = float(np.mean([b.estimate[c] for b, c in zip(present, columns)]))
        jack = None
        if options.method == "bca":
            jack = np.concatenate([b.jack[:, c] for b, c in zip(present, columns)]) / len(present)
        result[key] = _entry(values, estimate, options, jack)
    return result


# ------------------------------------------------------------------------------------------ a whole run


@dataclass
class RunBootstrap:
    """Every generator's bootstrap of one run, by (suite, generator), and the intervals built from them."""

    options: UncertaintyOptions
    generators: dict[tuple[str, str], GeneratorBootstrap] = field(default_factory=dict)
    shared_reals: dict[str, int] = field(default_factory=dict)
    """Per suite: real images that belong to several generators (one pool of reals)."""

    def blocks(self, suite_order: Sequence[str], generator_order: dict[str, Sequence[str]]) -> dict:
        """{"suites": {suite: {"generators": {g: entries}, "mean": entries}}, "mean": entries}."""
        suites, everything = {}, []
        for suite in suite_order:
            boots = [self.generators[(suite, g)] for g in generator_order[suite] if (suite, g) in self.generators]
            everything += boots
            suites[suite] = {"generators": {b.key.split("/", 1)[1]: b.entries(self.options) for b in boots},
                             "mean": self._shared_note(mean_entries(boots, self.options), [suite])}
        return {"suites": suites, "mean": self._shared_note(mean_entries(everything, self.options), suite_order)}

    def _shared_note(self, entries: dict, suites: Sequence[str]) -> dict:
        shared = sum(self.shared_reals.get(s, 0) for s in suites)
        if shared:
            for entry in entries.values():
                if entry.get("low") is not None:
                    entry["note"] = (f"{shared} real images belong to several generators and are resampled "
                                     "independently in each: this interval ignores that they are the same images "
                                     "and is too narrow")
        return entries


def _workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _map_threads(function, items: Sequence, workers: int | None) -> list:
    """[function(item) for item in items], on `workers` threads (default `_workers()`) when there are
    several items (numpy releases the GIL in the bootstrap's bincounts and sorts)."""
    workers = workers or _workers()
    if workers > 1 and len(items) > 1:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(function, items))
    return [function(item) for item in items]


def bootstrap_run(scores, options: UncertaintyOptions, *, prob_precision: str = DEFAULT_PROB_PRECISION,
                  calibrated_logit: float | None = None, workers: int | None = None) -> RunBootstrap:
    """Every (suite, generator) of a scores frame (scores.parquet's `suite`, `generator`, `label`,
    `logit`), resampled. numpy releases the GIL in its array loops, so generators run on `workers`
    threads (default: up to 2); each thread holds one chunk (CELL_BUDGET cells per array) at a time."""
    groups = list(scores.groupby(["suite", "generator"], sort=False))

    def one(item):
        (suite, generator), rows = item
        return (suite, generator), bootstrap_generator(
            rows["label"].to_numpy(), rows["logit"].to_numpy(dtype=np.float64), options, f"{suite}/{generator}",
            prob_precision=prob_precision, calibrated_logit=calibrated_logit)

    done = _map_threads(one, groups, workers)
    return RunBootstrap(options, dict(done), shared_reals(scores) if "path" in scores else {})


def attach_intervals(metrics: dict, blocks: dict, options: UncertaintyOptions) -> dict:
    """metrics.json with an `intervals` block beside each generator's and mean's values and the options
    in a top-level `uncertainty` block. Existing keys are left as they are."""
    metrics["uncertainty"] = options.describe()
    for suite, block in blocks["suites"].items():
        target = metrics["suites"].get(suite)
        if target is None:
            continue
        for generator, entries in block["generators"].items():
            if generator in target["generators"]:
                target["generators"][generator]["intervals"] = entries
        target.setdefault("mean", {})["intervals"] = block["mean"]
    metrics.setdefault("mean", {})["intervals"] = blocks["mean"]
    return metrics


# ------------------------------------------------------------------------------------------ spread


def spread(values: dict[str, float | None], higher_is_better: bool = True) -> dict | None:
    """A metric over generators beyond its mean: the standard deviation (population, ddof 0, as numpy's
    np.std and most papers that print "mean +- std") and the worst generator with its value. None where
    no generator has a value."""
    present = {name: float(v) for name, v in values.items() if v is not None and not math.isnan(float(v))}
    if not present:
        return None
    worst = (min if higher_is_better else max)(present, key=present.get)
    return {"std": float(np.std(list(present.values()))), "worst": worst, "worst_value": present[worst],
            "generators": len(present)}


def spread_block(per_generator: dict[str, dict]) -> dict:
    """`spread` of every fraction metric over a suite's generators (metrics.json's per-suite `spread`)."""
    keys = [k for k in INTERVAL_KEYS if any(k in m for m in per_generator.values())]
    result = {}
    for key in keys:
        entry = spread({g: m.get(key) for g, m in per_generator.items()}, METRICS[key].higher_is_better)
        if entry is not None:
            result[key] = entry
    return result


def attach_spread(metrics: dict) -> dict:
    """Each suite's `spread` block, and the run's over all its generators (top-level `spread`)."""
    every: dict[str, dict] = {}
    for suite, block in metrics["suites"].items():
        block["spread"] = spread_block(block["generators"])
        every.update({f"{suite}/{g}": m for g, m in block["generators"].items()})
    metrics["spread"] = spread_block(every)
    return metrics


# ------------------------------------------------------------------------------------------ readers


def metrics_with_intervals(metrics: dict, scores_reader, options: UncertaintyOptions | None = None) -> dict:
    """A run's metrics.json with intervals under `options` (None: as stored, or the defaults where none
    are stored): the stored ones when they were computed with the same options, else computed now from
    the run's scores (`scores_reader()` returns scores.parquet's frame, or None when the folder has none).
    Runs written before intervals existed read the same way. Returns a copy; the folder is not changed."""
    import copy

    stored = metrics.get("uncertainty")
    if options is None:
        options = UncertaintyOptions.from_description(stored) or UncertaintyOptions()
    result = copy.deepcopy(metrics)
    if options.same_as(stored):
        return result
    scores = scores_reader()
    if scores is None or len(scores) == 0:
        result["uncertainty"] = {**options.describe(), "absent": "the run folder has no scores.parquet"}
        return result
    calibration = metrics.get("calibration") or {}
    boot = bootstrap_run(scores, options, prob_precision=metrics.get("prob_precision") or "float64",
                         calibrated_logit=calibration.get("threshold_logit"))
    suite_order = list(metrics.get("suites", {}))
    generator_order = {s: list(metrics["suites"][s].get("generators", {})) for s in suite_order}
    attach_intervals(result, boot.blocks(suite_order, generator_order), options)
    if "spread" not in result:
        attach_spread(result)
    return result


# ------------------------------------------------------------------------------------------ DeLong


def delong(labels, *scores) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUCs of one or more score vectors on the same images and their covariance matrix, by DeLong,
    DeLong and Clarke-Pearson (1988), computed with midranks as Sun and Xu (2014): each fake's placement
    (the share of reals below it, ties half) and each real's (the share of fakes above it); the AUC is
    their mean and its variance var(fake placements) / n_fake + var(real placements) / n_real."""
    from scipy.stats import rankdata

    labels = np.asarray(labels).reshape(-1)
    real, fake = labels == 0, labels == 1
    m, n = int(real.sum()), int(fake.sum())
    if m < 2 or n < 2:
        raise ValueError("DeLong's variance needs at least two real and two fake images")
    fake_place, real_place = [], []
    for values in scores:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        combined = rankdata(values)
        within_fake = rankdata(values[fake])
        within_real = rankdata(values[real])
        fake_place.append((combined[fake] - within_fake) / m)  # reals below each fake (ties half)
        real_place.append(1.0 - (combined[real] - within_real) / n)  # fakes above each real
    fake_place, real_place = np.array(fake_place), np.array(real_place)
    aucs = fake_place.mean(axis=1)
    covariance = np.atleast_2d(np.cov(fake_place)) / n + np.atleast_2d(np.cov(real_place)) / m
    return aucs, covariance


def mean_over(parts: Sequence[tuple[str, object, object, str, float | None]], options: UncertaintyOptions,
              workers: int | None = None) -> dict[str, dict]:
    """Intervals of the unweighted mean over generators drawn from any runs, e.g. a comparison table's
    mean over all 38 generators of five test sets from five run folders. `parts`: (key `suite/generator`,
    labels, logits, prob_precision, calibrated_logit) per generator. Each generator's stream is seeded by
    its key, so a suite's mean computed here equals the one its run stored under the same options."""

    def one(part):
        key, labels, logits, precision, calibrated = part
        return bootstrap_generator(labels, logits, options, key, prob_precision=precision, calibrated_logit=calibrated)

    return mean_entries(_map_threads(one, parts, workers), options)
