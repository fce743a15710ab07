"""Paired comparison of two runs on the same images (`bench compare RUN_A RUN_B`, `bench.api.compare`).

Two detectors (or two weights, or clean vs perturbed images) scored on the same images are compared
image by image: rows of the two runs' scores.parquet are matched by (suite, generator, path). Images only one run
scored are named, never silently dropped; with no image in common there is nothing to compare (exit 2).

Per generator, on the images both runs scored:
- the difference A - B in ACC, AP and AUC with a paired-bootstrap interval: the same resampled images
  (stratified by label, as bench.engine.uncertainty) feed both runs' metrics, so what the two runs share
  (which images happened to be in the test set) cancels out of the difference;
- a p-value: ACC by McNemar's exact test on the images exactly one run gets right (a binomial test of
  "A right, B wrong" among the discordant images, scipy.stats.binomtest), AUC by DeLong's test for two
  correlated ROC curves, AP by the paired bootstrap (twice the smaller share of resampled differences on
  either side of zero, with the +1 correction of Davison and Hinkley, so never exactly 0);
- Holm's step-down correction across the generators, per metric: with many generators some raw p-values
  fall under 0.05 by chance; `significant` is the corrected p below 1 - level.
Each suite's mean over its generators (and the run's over all) gets the interval of the mean difference
(generators resampled independently) and a p-value from the same bootstrap (DeLong's variances summed for
AUC); the means are not part of Holm's families.

Each run's metrics read its own scores as its metrics.json says (`prob_precision`), so on the full image
sets the A and B columns equal the runs' own metrics.json values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.engine.metrics import METRICS, distinct_images, scores_and_threshold, shared_reals
from bench.engine.results import FinishedRun, finished_runs, read_run
from bench.engine.uncertainty import (
    UncertaintyOptions,
    delong,
    generator_rng,
    interval,
    jackknife,
    point_values,
    prepare,
    resample,
)
from bench.errors import BenchError

COMPARED = ("acc", "ap", "auc")
TESTS = {"acc": "McNemar exact", "ap": "paired bootstrap", "auc": "DeLong"}
MIN_PER_CLASS = 10


@dataclass
class Row:
    """One metric of one generator (or mean) of a comparison; values are fractions in [0, 1]."""

    suite: str
    generator: str
    """A generator's name, or "mean" (the suite's mean over its generators; suite "all": the run's)."""
    metric: str
    a: float | None
    b: float | None
    difference: float | None
    low: float | None
    high: float | None
    test: str
    p: float | None
    p_holm: float | None = None
    significant: bool | None = None
    n_real: int = 0
    n_fake: int = 0
    discordant: tuple[int, int] | None = None
    """ACC: (A right and B wrong, A wrong and B right), the cells McNemar's test reads."""
    reason: str | None = None
    """Why there is no interval or p-value."""


@dataclass
class Comparison:
    a: FinishedRun
    b: FinishedRun
    options: UncertaintyOptions
    rows: list[Row]
    only_a: list[str] = field(default_factory=list)
    """`suite/path` of the images only run A scored."""
    only_b: list[str] = field(default_factory=list)
    n_both: int = 0
    prob_precision: tuple[str, str] = ("float32", "float32")
    shared_reals: dict[str, int] = field(default_factory=dict)
    """Per suite, how many real images belong to several generators (a pool of reals): the mean rows resample
    them independently in each generator, so their intervals are too narrow."""

    @property
    def alpha(self) -> float:
        return round(1.0 - self.options.level, 12)  # 0.05, not 0.050000000000000044

    def label(self, which: str) -> str:
        run = self.a if which == "a" else self.b
        weights = (run.info.get("weights") or {}).get("name") or (run.info.get("weights") or {}).get("path") or "?"
        perturbation = run.info.get("perturbation")
        return f"{run.info.get('display_name') or run.detector} ({weights}{', ' + perturbation if perturbation else ''})"

    def to_dict(self) -> dict:
        return {
            "a": {"run": self.a.run_id, "folder": str(self.a.folder), "label": self.label("a"),
                  "prob_precision": self.prob_precision[0]},
            "b": {"run": self.b.run_id, "folder": str(self.b.folder), "label": self.label("b"),
                  "prob_precision": self.prob_precision[1]},
            "uncertainty": {**self.options.describe(), "paired": True, "alpha": self.alpha,
                            "correction": "Holm across the generators, per metric (means not included)"},
            "n_both": self.n_both, "only_a": self.only_a, "only_b": self.only_b, "shared_reals": self.shared_reals,
            "rows": [asdict(row) for row in self.rows],
        }


# ------------------------------------------------------------------------------------------ resolving runs


def resolve_run(spec: str | Path | FinishedRun, results: str | Path | None = None,
                suite: str | None = None) -> FinishedRun:
    """A run folder, or the latest finished unperturbed run in the results store whose detector name or
    weights name is `spec` (e.g. `lfm`, `lfm:demo`), covering `suite` when given."""
    if isinstance(spec, FinishedRun):
        return spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return read_run(path)
    from bench import settings

    root = Path(results) if results else settings.results_root()
    candidates = []
    for run in finished_runs(root):
        weights = (run.info.get("weights") or {}).get("name")
        if str(spec) not in (run.detector, weights) or run.info.get("perturbation"):
            continue
        if suite and suite not in (run.metrics.get("suites") or {}):
            continue
        candidates.append(run)
    if not candidates:
        known = sorted({r.detector for r in finished_runs(root)} | {(r.info.get("weights") or {}).get("name") or ""
                                                                    for r in finished_runs(root)} - {""})
        where = f" covering {suite}" if suite else ""
        raise BenchError(f"{spec}: not a run folder, and no finished unperturbed run{where} of a detector or weights "
                         f"of that name under {root / 'runs'} (there: {', '.join(known) or 'none'}); pass run folders "
                         "or evaluate first with `bench run`")
    detectors = {run.detector for run in candidates}
    if len(detectors) > 1:
        raise BenchError(f"{spec} names runs of several detectors ({', '.join(sorted(detectors))}) under {root}; "
                         "pass a detector name or the run folders")
    return candidates[-1]


# ------------------------------------------------------------------------------------------ statistics


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None): sorted ascending, the i-th (from 0) of m is
    multiplied by m - i, then made non-decreasing and capped at 1."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    m = len(present)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def mcnemar_exact(a_right: np.ndarray, b_right: np.ndarray) -> tuple[float, tuple[int, int]]:
    """McNemar's exact test: among the images exactly one run gets right, is "A right" as likely as "B
    right"? Two-sided binomial p-value of the discordant counts (1.0 when there are none)."""
    from scipy.stats import binomtest

    a_only = int(np.count_nonzero(a_right & ~b_right))
    b_only = int(np.count_nonzero(~a_right & b_right))
    if a_only + b_only == 0:
        return 1.0, (a_only, b_only)
    return float(binomtest(a_only, a_only + b_only, 0.5).pvalue), (a_only, b_only)


def bootstrap_p(differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from resampled differences: twice the smaller share on either
    side of zero, counted with +1 (Davison and Hinkley 1997, eq. 4.11), capped at 1."""
    count = differences.size
    below = np.count_nonzero(differences <= 0)
    above = np.count_nonzero(differences >= 0)
    return float(min(1.0, 2 * (min(below, above) + 1) / (count + 1)))


def _normal_p(z: float) -> float:
    from scipy.special import ndtr

    return float(2 * ndtr(-abs(z)))


# ------------------------------------------------------------------------------------------ the comparison


def _matched(a: FinishedRun, b: FinishedRun, suite: str | None) -> tuple[pd.DataFrame, list[str], list[str]]:
    def scores(run: FinishedRun) -> pd.DataFrame:
        path = run.folder / "scores.parquet"
        if not path.is_file():
            raise BenchError(f"{run.folder} has no scores.parquet: a comparison pairs images, which needs them")
        frame = run.scores[["suite", "generator", "path", "label", "logit"]]
        return frame[frame["suite"] == suite] if suite else frame

    left, right = scores(a), scores(b)
    # a row is an image in a generator's test set: a pool of reals shared by several generators (0_real/ beside
    # 1_fake/<generator>/) has one row per generator, and matching by path alone would pair each with all of them
    merged = left.merge(right, on=["suite", "generator", "path"], how="outer", suffixes=("_a", "_b"),
                        indicator=True)
    only_a = sorted(set(merged.loc[merged["_merge"] == "left_only", "suite"] + "/" +
                        merged.loc[merged["_merge"] == "left_only", "path"]))
    only_b = sorted(set(merged.loc[merged["_merge"] == "right_only", "suite"] + "/" +
                        merged.loc[merged["_merge"] == "right_only", "path"]))
    both = merged[merged["_merge"] == "both"].copy()
    if both.empty:
        where = f" in suite {suite}" if suite else ""
        raise BenchError(f"runs {a.run_id} ({a.folder}) and {b.run_id} ({b.folder}) have no image in common{where} "
                         f"(matched by suite, generator and path; A scored {len(left)}, B {len(right)}): nothing "
                         "to compare")
    conflicts = both[both["label_a"] != both["label_b"]]
    if len(conflicts):
        examples = ", ".join((conflicts["suite"] + "/" + conflicts["path"]).head(3))
        raise BenchError(f"{len(conflicts)} images have different labels in {a.run_id} and {b.run_id} (e.g. "
                         f"{examples}): they are not the same test set")
    both = both.rename(columns={"label_a": "label"})
    return both, only_a, only_b


def _precision(run: FinishedRun) -> str:
    return run.metrics.get("prob_precision") or "float64"  # folders before it was recorded used float64


@dataclass
class _Paired:
    """One generator's paired resamples and tests."""

    suite: str
    generator: str
    n_real: int
    n_fake: int
    estimate_a: np.ndarray
    estimate_b: np.ndarray
    keys: tuple[str, ...]
    replicates: np.ndarray | None = None
    """(resamples, metrics) of A - B."""
    jack: np.ndarray | None = None
    auc_variance: float | None = None
    mcnemar: tuple[float, tuple[int, int]] | None = None
    delong_p: float | None = None
    reason: str | None = None

    def estimate(self, metric: str) -> tuple[float, float]:
        i = self.keys.index(metric)
        return float(self.estimate_a[i]), float(self.estimate_b[i])


def _pair(suite: str, generator: str, rows: pd.DataFrame, precision: tuple[str, str],
          options: UncertaintyOptions) -> _Paired:
    labels = rows["label"].to_numpy()
    logits = (rows["logit_a"].to_numpy(dtype=np.float64), rows["logit_b"].to_numpy(dtype=np.float64))
    preps = [prepare(labels, logit, prob_precision=p, keep_order=True) for logit, p in zip(logits, precision)]
    n_real, n_fake = preps[0].n_real, preps[0].n_fake
    paired = _Paired(suite, generator, n_real, n_fake, point_values(preps[0]), point_values(preps[1]), preps[0].keys)
    right = []
    for logit, p in zip(logits, precision):
        scores, threshold = scores_and_threshold(logit, p)
        right.append((scores > threshold) == (labels == 1))
    paired.mcnemar = mcnemar_exact(*right)
    small = [f"{n} {name} images" for name, n in (("real", n_real), ("fake", n_fake)) if n < MIN_PER_CLASS]
    if small:
        paired.reason = f"{' and '.join(small)} both scored, fewer than the {MIN_PER_CLASS} per class a bootstrap needs"
        return paired
    key = f"compare/{suite}/{generator}"
    reps_a, reps_b = resample(preps, options.resamples, generator_rng(options.seed, key))
    difference = reps_a - reps_b
    # equal values reached through the two runs' own score groups can differ by a rounding error (1e-16);
    # a resample where both are perfect is a tie, not a win of one side
    difference[np.abs(difference) < 1e-12] = 0.0
    paired.replicates = difference
    if options.method == "bca":
        jack_a = jackknife(preps[0], generator_rng(options.seed, key + "/jackknife"))
        jack_b = jackknife(preps[1], generator_rng(options.seed, key + "/jackknife"))  # the same units
        paired.jack = (jack_a - jack_b) - (paired.estimate_a - paired.estimate_b)
    ranked = [scores_and_threshold(logit, p)[0] for logit, p in zip(logits, precision)]
    aucs, covariance = delong(labels, *ranked)
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    paired.auc_variance = variance
    difference = float(aucs[0] - aucs[1])
    if variance > 0:
        paired.delong_p = _normal_p(difference / math.sqrt(variance))
    else:  # both rank every pair the same way (e.g. both perfect)
        paired.delong_p = 1.0 if difference == 0 else 0.0
    return paired


def _row(paired: _Paired, metric: str, options: UncertaintyOptions) -> Row:
    a, b = paired.estimate(metric)
    row = Row(paired.suite, paired.generator, metric, a, b, a - b, None, None, TESTS[metric], None,
              n_real=paired.n_real, n_fake=paired.n_fake)
    if metric == "acc":
        row.p, row.discordant = paired.mcnemar
    if paired.replicates is None:
        row.reason = paired.reason
        return row
    i = paired.keys.index(metric)
    jack = None if paired.jack is None else paired.jack[:, i]
    row.low, row.high = interval(paired.replicates[:, i], a - b, options, jack)
    if metric == "ap":
        row.p = bootstrap_p(paired.replicates[:, i])
    elif metric == "auc":
        row.p = paired.delong_p
    return row


def _mean_row(suite: str, pairs: list[_Paired], metric: str, options: UncertaintyOptions,
              counts: tuple[int, int]) -> Row:
    estimates = [p.estimate(metric) for p in pairs]
    a = float(np.mean([e[0] for e in estimates]))
    b = float(np.mean([e[1] for e in estimates]))
    test = "DeLong (variances summed)" if metric == "auc" else "paired bootstrap"
    row = Row(suite, "mean", metric, a, b, a - b, None, None, test, None,
              n_real=counts[0], n_fake=counts[1])
    lacking = [p.generator for p in pairs if p.replicates is None]
    if lacking:
        row.reason = f"no resamples for {', '.join(lacking)} (too few images), so none for the mean"
        return row
    i = pairs[0].keys.index(metric)
    values = np.mean([p.replicates[:, i] for p in pairs], axis=0)
    jack = None
    if options.method == "bca":
        jack = np.concatenate([p.jack[:, i] for p in pairs]) / len(pairs)
    row.low, row.high = interval(values, a - b, options, jack)
    if metric == "auc":
        variance = sum(p.auc_variance for p in pairs) / len(pairs) ** 2
        row.p = _normal_p((a - b) / math.sqrt(variance)) if variance > 0 else (1.0 if a == b else 0.0)
    else:
        row.p = bootstrap_p(values)
    return row


def compare_runs(run_a: str | Path | FinishedRun, run_b: str | Path | FinishedRun, *,
                 results: str | Path | None = None, suite: str | None = None,
                 options: UncertaintyOptions | None = None) -> Comparison:
    """Compare two runs image by image (see the module's docstring). `run_a`/`run_b`: run folders, or
    detector or weights names resolved in the results store `results`; `suite` restricts to one suite."""
    options = options or UncertaintyOptions()
    a = resolve_run(run_a, results, suite)
    b = resolve_run(run_b, results, suite)
    both, only_a, only_b = _matched(a, b, suite)
    precision = (_precision(a), _precision(b))
    rows: list[Row] = []
    every: list[_Paired] = []
    # in run A's order of suites and generators (the merge sorted the rows)
    recorded = a.metrics.get("suites") or {}
    present = set(both["suite"])
    suites = [s for s in recorded if s in present] + sorted(present - set(recorded))
    for suite_name in suites:
        in_suite = both[both["suite"] == suite_name]
        named = list((recorded.get(suite_name) or {}).get("generators") or {})
        found = set(in_suite["generator"])
        generators = [g for g in named if g in found] + sorted(found - set(named))
        pairs = [_pair(suite_name, generator, in_suite[in_suite["generator"] == generator], precision, options)
                 for generator in generators]
        every += pairs
        for metric in COMPARED:
            rows += [_row(p, metric, options) for p in pairs]
            rows.append(_mean_row(suite_name, pairs, metric, options, distinct_images(in_suite)))
    if len(suites) > 1:
        rows += [_mean_row("all", every, metric, options, distinct_images(both)) for metric in COMPARED]
    for metric in COMPARED:
        family = [r for r in rows if r.metric == metric and r.generator != "mean"]
        for row, adjusted in zip(family, holm([r.p for r in family])):
            row.p_holm = adjusted
    for row in rows:
        judged = row.p_holm if row.generator != "mean" else row.p
        row.significant = None if judged is None else bool(judged < round(1.0 - options.level, 12))
    order = {m: i for i, m in enumerate(COMPARED)}
    rows.sort(key=lambda r: (suites.index(r.suite) if r.suite in suites else len(suites), order[r.metric]))
    return Comparison(a, b, options, rows, only_a, only_b, sum(distinct_images(both)), precision, shared_reals(both))


# ------------------------------------------------------------------------------------------ rendering


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value + 0.0:{'+' if signed else ''}.1f}"


def _p(value: float | None, alpha: float) -> str:
    if value is None:
        return "-"
    if value < 0.001:
        return "<0.001"
    text = f"{value:.3f}"
    if (float(text) < alpha) != (value < alpha):  # 0.04998 must not read 0.050 beside "significant: yes"
        text = f"{value:.4g}"
    return text


def _cells(row: Row, alpha: float) -> list[str]:
    interval_text = "" if row.low is None else f" [{_pct(row.low, True)}, {_pct(row.high, True)}]"
    significant = {True: "yes", False: "no", None: "-"}[row.significant]
    return [row.suite if row.generator == "mean" and row.suite == "all" else row.generator,
            METRICS[row.metric].display, _pct(row.a), _pct(row.b), _pct(row.difference, True) + interval_text,
            row.test, _p(row.p, alpha), _p(row.p_holm, alpha) if row.generator != "mean" else "-", significant,
            f"{row.n_real}/{row.n_fake}"]


HEADER = ["generator", "metric", "A", "B", "A - B [CI]", "test", "p", "p (Holm)", "significant", "n real/fake"]


def _notes(comparison: Comparison) -> list[str]:
    level = f"{100 * comparison.options.level:g}%"
    notes = [
        f"A = {comparison.label('a')}, run {comparison.a.run_id}; B = {comparison.label('b')}, run {comparison.b.run_id}.",
        f"{comparison.n_both} images scored by both, matched by suite, generator and path; values in %, on those images.",
        f"Intervals: {level} paired {comparison.options.method} bootstrap, {comparison.options.resamples} resamples "
        f"(seed {comparison.options.seed}), stratified by label within each generator. Significant: Holm-corrected "
        f"p < {comparison.alpha:g} across the generators, per metric; a mean row's own p (not corrected).",
    ]
    for which, missing in (("A", comparison.only_a), ("B", comparison.only_b)):
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more (all listed by --json)" if len(missing) > 5 else "")
            notes.append(f"{len(missing)} images scored only by {which}, left out: {shown}.")
    for suite, n in comparison.shared_reals.items():
        notes.append(f"{suite}: {n} real images belong to several generators (a shared pool of reals) and are "
                     "resampled independently in each, so the mean rows' intervals and p-values treat them as "
                     "different images: too narrow and too small.")
    reasons = sorted({f"{r.suite}/{r.generator}: {r.reason}" for r in comparison.rows if r.reason})
    notes += [f"No interval for {reason}." for reason in reasons]
    return notes


def render_markdown(comparison: Comparison) -> str:
    lines = []
    for suite in dict.fromkeys(r.suite for r in comparison.rows):
        rows = [r for r in comparison.rows if r.suite == suite]
        title = "all suites: mean over every generator" if suite == "all" else suite
        lines += [f"### {title}", "", "| " + " | ".join(HEADER) + " |",
                  "|:---|:---|---:|---:|---:|:---|---:|---:|:---|---:|"]
        for row in rows:
            cells = [c.replace("|", r"\|") for c in _cells(row, comparison.alpha)]
            if row.generator == "mean":
                cells[0] = f"*{cells[0]}*"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"- {note}" for note in _notes(comparison)]
    return "\n".join(lines) + "\n"


def render_latex(comparison: Comparison) -> str:
    from bench.outputs.tables.render import tex_escape

    def tex(text: str) -> str:
        text = tex_escape(text).replace("<", "$<$")
        return re.sub(r"(?<![A-Za-z0-9_])-(?=\d)", "$-$", text)  # a minus sign, not a hyphen

    lines = ["% bench compare: generated by lfm-bench; needs \\usepackage{booktabs}.",
             *[f"% {note}" for note in _notes(comparison)],
             "\\begin{table}[t]", "\\centering", "\\small",
             f"\\caption{{{tex_escape(comparison.label('a'))} vs.\\ {tex_escape(comparison.label('b'))}: paired "
             f"differences ({100 * comparison.options.level:g}\\% intervals, Holm-corrected tests).}}",
             "\\resizebox{\\textwidth}{!}{%", "\\begin{tabular}{@{}llrrrlrrlr@{}}", "\\toprule",
             " & ".join(tex_escape(h) for h in HEADER) + " \\\\"]
    for suite in dict.fromkeys(r.suite for r in comparison.rows):
        title = "all suites" if suite == "all" else suite
        lines += ["\\midrule", f"\\multicolumn{{{len(HEADER)}}}{{@{{}}l}}{{\\emph{{{tex_escape(title)}}}}} \\\\"]
        for row in (r for r in comparison.rows if r.suite == suite):
            cells = [tex(c) for c in _cells(row, comparison.alpha)]
            if row.generator == "mean":
                cells[0] = f"\\emph{{{cells[0]}}}"
            lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}}", "\\end{table}", ""]
    return "\n".join(lines)


FORMATS = {"markdown": render_markdown, "latex": render_latex}
