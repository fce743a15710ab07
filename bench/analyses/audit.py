"""Shortcut audit: can file format, JPEG quality or image size alone tell real from fake in a suite?

Several public benchmarks can be "solved" without looking at content because their real images are JPEG
photographs and their generated ones PNG (or the two classes come at different sizes): a detector can
score well by learning the container. The audit reads only file headers (PIL's lazy ``Image.open``: the
format from the file's content, not its extension; the size; JPEG quantisation tables) and, per suite and
generator, split by label, reports the share of each format, JPEG quality estimates and the image sizes.

A shortcut's strength is measured the way a detector is: the AP (fake = positive) of a trivial score
computed from one file property, in whichever direction ranks better (``JPEG -> real`` or
``JPEG -> fake``):
- format: 1 if the file is in format F, for the format F that separates best;
- size: the pixel count W*H;
- JPEG quality: the estimated quality, over the JPEG files, when both classes have some.
Every trivial score's AP and ROC-AUC are reported, whatever they are; the warning is in proportion to the
ROC-AUC (prevalence-free, 0.5 = no information): "moderate" from `MODERATE_AUC` (0.65), "strong" from
`STRONG_AUC` (0.90). A score below `MODERATE_AUC`, or whose AP is no better than its chance level (the
share of fakes among the files it scores), does not separate the classes and no direction is claimed for it.
AP is reported as the strength because it is the benchmark's own metric: an AP near 100 from "is it a
JPEG" means the suite's AP column can be reached without looking at a pixel.

Given run folders (`audit_runs`, `bench audit --run RUN_DIR`), a detector's accuracy is broken down by file
format and by size bucket within each class, from the run's stored logits and the files' headers, with an
exact test of whether its errors depend on the format (or size) within a class: an LFM that calls 89% of the
PNG reals fake and 20% of the JPEG reals on a folder whose fakes are PNG has learnt the container.

JPEG quality is estimated from the luminance quantisation table (bench.engine.jpeg_quality): the libjpeg
(IJG) quality whose scaled Annex K table matches exactly, or else the nearest one, marked approximate.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.engine.decode import UnusableImage, unusable_reasons
from bench.engine.files import file_problem, path_text, relative_text
from bench.engine.jpeg_quality import estimate_jpeg_quality

logger = logging.getLogger(__name__)

MODERATE_AUC = 0.65
"""A trivial score that ranks a random fake above a random real at least this often is a moderate shortcut."""
STRONG_AUC = 0.9
"""... and from this often a strong one (it alone explains most of a detector's AUC)."""
WARN_AUC = MODERATE_AUC
"""Warn from here (moderate and strong)."""

@dataclass
class FileFacts:
    path: str
    label: int
    format: str
    """PIL's format name from the file's content (JPEG, PNG, WEBP, ...), or "unreadable"."""
    width: int | None = None
    height: int | None = None
    jpeg_quality: int | None = None
    quality_exact: bool | None = None
    problem: str | None = None
    """Why an unreadable file could not be read (the reasons `bench run` and `bench data check` give)."""


def inspect_file(path: Path, label: int, relative: str) -> FileFacts:
    """Header facts of one file; never raises for a bad file (format "unreadable", with the reason). Only
    regular files are opened (a FIFO or a link to a device would block), and headers that declare a
    decompression bomb are refused as `bench run` refuses them."""
    try:
        problem = file_problem(path)
        if problem is not None:
            raise UnusableImage(problem)
        with unusable_reasons(), Image.open(path) as img:
            facts = FileFacts(relative, label, img.format or "unknown", *img.size)
            tables = getattr(img, "quantization", None)
            if img.format == "JPEG" and tables:
                facts.jpeg_quality, facts.quality_exact = estimate_jpeg_quality(tables[min(tables)])
            return facts
    except UnusableImage as error:
        logger.debug("cannot read %s: %s", path, error.reason)
        return FileFacts(relative, label, "unreadable", problem=error.reason)


@dataclass
class Shortcut:
    prop: str
    """format, size or jpeg quality."""
    ap: float
    auc: float
    direction: str
    """Which way the trivial rule goes, e.g. "JPEG -> real", "larger -> fake"; when the score does not separate
    the classes (strength "none"), "does not separate" instead."""
    warn: bool
    """strength is moderate or strong."""
    strength: str = "none"
    """"strong" (ROC-AUC >= STRONG_AUC), "moderate" (>= MODERATE_AUC) or "none"."""
    chance_ap: float | None = None
    """The AP of a random score on the same files: the share of fakes among them."""


def shortcut_strength(auc: float, ap: float, chance_ap: float) -> str:
    """How strongly a trivial score separates the classes: "none" below MODERATE_AUC or when its AP is no
    better than chance (the share of fakes), else "moderate", or "strong" from STRONG_AUC."""
    if auc < MODERATE_AUC or ap <= chance_ap:
        return "none"
    return "strong" if auc >= STRONG_AUC else "moderate"


def _shortcut(prop: str, labels: np.ndarray, ap: float, auc: float, direction: str) -> Shortcut:
    chance = float(np.mean(labels == 1))
    strength = shortcut_strength(auc, ap, chance)
    return Shortcut(prop, ap, auc, direction if strength != "none" else "does not separate", strength != "none",
                    strength, chance)


def trivial_strength(labels: np.ndarray, score: np.ndarray) -> tuple[float, float, bool]:
    """(AP, ROC-AUC, flipped?) of the better direction of a trivial score (fake = 1 = positive)."""
    forward = roc_auc_score(labels, score)
    flipped = forward < 0.5
    oriented = -score if flipped else score
    return float(average_precision_score(labels, oriented)), float(max(forward, 1 - forward)), flipped


def _format_shortcut(labels: np.ndarray, formats: list[str]) -> Shortcut | None:
    best = None
    if len(set(formats)) == 1:
        ap, auc, _ = trivial_strength(labels, np.zeros(len(labels)))
        return Shortcut("format", ap, auc, f"all {formats[0]}", False, "none", float(np.mean(labels == 1)))
    for name in sorted(set(formats)):
        score = np.array([f == name for f in formats], dtype=float)
        ap, auc, flipped = trivial_strength(labels, score)
        if best is None or (auc, ap) > (best.auc, best.ap):
            # "PNG -> fake" reads better than "not JPEG -> fake": say which class the format points to
            best = _shortcut("format", labels, ap, auc, f"{name} -> {'real' if flipped else 'fake'}")
    return best


def shortcuts(files: Sequence[FileFacts]) -> list[Shortcut]:
    """The trivial scores of one generator's files (both classes needed; unreadable files left out)."""
    readable = [f for f in files if f.width is not None]
    labels = np.array([f.label for f in readable])
    if len(set(labels.tolist())) < 2:
        return []
    found = [_format_shortcut(labels, [f.format for f in readable])]
    pixels = np.array([f.width * f.height for f in readable], dtype=float)
    ap, auc, flipped = trivial_strength(labels, pixels)
    direction = "one size" if len(set(pixels.tolist())) == 1 else f"{'smaller' if flipped else 'larger'} -> fake"
    found.append(_shortcut("size", labels, ap, auc, direction))
    jpegs = [f for f in readable if f.jpeg_quality is not None]
    jpeg_labels = np.array([f.label for f in jpegs])
    if len(set(jpeg_labels.tolist())) == 2:
        quality = np.array([f.jpeg_quality for f in jpegs], dtype=float)
        ap, auc, flipped = trivial_strength(jpeg_labels, quality)
        found.append(_shortcut("jpeg quality", jpeg_labels, ap, auc, f"{'lower' if flipped else 'higher'} quality -> fake"))
    return [s for s in found if s is not None]


@dataclass
class ClassSummary:
    n: int
    unreadable: int
    formats: dict[str, float]
    """format -> share of the readable files."""
    jpeg_quality: dict | None
    """{median, min, max, approximate} over the JPEG files with a table, or None."""
    sizes: dict | None
    """{most_common, most_common_share, distinct, smallest, largest, median_pixels}."""


def summarise(files: Sequence[FileFacts]) -> ClassSummary:
    readable = [f for f in files if f.width is not None]
    formats = Counter(f.format for f in readable)
    shares = {name: count / len(readable) for name, count in formats.most_common()} if readable else {}
    qualities = [f for f in readable if f.jpeg_quality is not None]
    quality = None
    if qualities:
        values = [f.jpeg_quality for f in qualities]
        quality = {"median": statistics.median(values), "min": min(values), "max": max(values),
                   "approximate": sum(not f.quality_exact for f in qualities)}
    sizes = None
    if readable:
        counts = Counter((f.width, f.height) for f in readable)
        (common, common_n), = counts.most_common(1)
        by_pixels = sorted(readable, key=lambda f: f.width * f.height)
        sizes = {
            "most_common": f"{common[0]}x{common[1]}", "most_common_share": common_n / len(readable),
            "distinct": len(counts),
            "smallest": f"{by_pixels[0].width}x{by_pixels[0].height}",
            "largest": f"{by_pixels[-1].width}x{by_pixels[-1].height}",
            "median_pixels": statistics.median(f.width * f.height for f in readable),
        }
    return ClassSummary(len(files), len(files) - len(readable), shares, quality, sizes)


@dataclass
class GeneratorAudit:
    name: str
    real: ClassSummary
    fake: ClassSummary
    shortcuts: list[Shortcut] = field(default_factory=list)
    not_audited: str | None = None
    """Why no trivial score could be computed (no readable file, one class only); None when audited."""
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of each file left out because it could not be read."""
    facts: list[FileFacts] = field(default_factory=list, repr=False)
    """Every file's header facts (what the alignment audit re-reads; not in the JSON)."""

    @property
    def warnings(self) -> list[Shortcut]:
        return [s for s in self.shortcuts if s.warn]


@dataclass
class SuiteAudit:
    suite: str
    root: str
    generators: list[GeneratorAudit]
    alignment: dict | None = None
    """What each `--align` policy leaves of the shortcuts and which one to use (bench.analyses.audit_align's
    `audit_with_alignment` fills it; `bench audit` calls that)."""

    def mean_ap(self, prop: str) -> float | None:
        """The suite's mean over generators of a trivial score's AP, as the benchmark averages AP."""
        values = [s.ap for g in self.generators for s in g.shortcuts if s.prop == prop]
        return float(np.mean(values)) if values else None

    def mean_chance_ap(self) -> float | None:
        """The mean over generators of a random score's AP (each generator's share of fakes): what a trivial
        score's mean AP reads when the headers tell nothing."""
        values = [g.shortcuts[0].chance_ap for g in self.generators if g.shortcuts and g.shortcuts[0].chance_ap is not None]
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict:
        generators = []
        for g in self.generators:
            entry = asdict(g)
            entry.pop("facts")
            generators.append(entry)
        return {"suite": self.suite, "root": self.root, "generators": generators,
                "mean_trivial_ap": {p: self.mean_ap(p) for p in ("format", "size", "jpeg quality")},
                "alignment": self.alignment}


def why_not_audited(files: Sequence[FileFacts]) -> str | None:
    """Why a generator's files give no trivial score (None when they give one): a shortcut needs readable
    files of both classes."""
    readable = [f for f in files if f.width is not None]
    if not files:
        return "no image files"
    if not readable:
        example = files[0]
        return f"none of its {len(files)} files could be read (e.g. {example.path}: {example.problem or 'unreadable'})"
    n_real = sum(f.label == 0 for f in readable)
    n_fake = len(readable) - n_real
    if not n_real or not n_fake:
        unreadable = len(files) - len(readable)
        also = f", {unreadable} unreadable" if unreadable else ""
        return f"one class only: {n_real} readable real and {n_fake} readable fake files{also}"
    return None


def audit_generator(name: str, files: Sequence[FileFacts]) -> GeneratorAudit:
    return GeneratorAudit(
        name, summarise([f for f in files if f.label == 0]), summarise([f for f in files if f.label == 1]),
        shortcuts(files), why_not_audited(files),
        [(f.path, f.problem or "unreadable") for f in files if f.width is None], list(files),
    )


def audit_suite(suite_name: str, root: Path, generators, workers: int = 4, progress=None) -> SuiteAudit:
    """`generators`: `bench.engine.suites.GeneratorFiles` of one suite. ``progress(n)`` is called per file."""
    audits = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for generator in generators:
            jobs = [(p, 0) for p in generator.real] + [(p, 1) for p in generator.fake]
            facts = []
            for result in pool.map(lambda job: inspect_file(job[0], job[1], _relative(job[0], root)), jobs):
                facts.append(result)
                if progress is not None:
                    progress(1)
            audits.append(audit_generator(generator.name, facts))
    return SuiteAudit(suite_name, str(root), audits)


def _relative(path: Path, root: Path) -> str:
    return relative_text(path, root) if path.is_relative_to(root) else path_text(path)


def audit_suites(spec: str = "demo", data_root: str | Path | None = None, *, workers: int | None = None,
                 progress: bool = True, quiet: bool = False) -> list[SuiteAudit]:
    """Audit every suite `spec` names (a name, group, comma list or folder; the demo data is built on first
    use): per generator, the file facts of each class and the shortcuts they offer. Only headers are read."""
    import os
    import sys

    from tqdm import tqdm

    from bench.engine.suites import (
        README_DATA_SECTION,
        check_layout,
        default_data_root,
        discover,
        resolve_suites_building_demo,
    )
    from bench.errors import BenchError

    if workers is not None and workers < 1:
        raise BenchError("--workers must be at least 1")
    root = Path(data_root).expanduser() if data_root else default_data_root()
    resolved = resolve_suites_building_demo(spec, root, quiet=quiet)
    missing = [r for r in resolved if not r.exists]
    if missing:
        names = ", ".join(f"{r.suite.name} (expected at {r.root})" for r in missing)
        raise BenchError(f"not found: {names}; see `bench data check` and {README_DATA_SECTION}")
    workers = workers or min(8, os.cpu_count() or 1)
    audits = []
    for r in resolved:
        generators = discover(r.root, r.suite)
        if not generators:
            raise BenchError(f"{r.suite.name}: no generator folder with 0_real/1_fake under {r.root}")
        check_layout(r.root, generators)  # a misspelt 0_real/1_fake or no image files: exit 2, as bench run
        total = sum(len(g.real) + len(g.fake) for g in generators)
        with tqdm(total=total, unit="file", desc=f"audit {r.suite.name}", file=sys.stderr, leave=False,
                  disable=(not progress) or None) as bar:
            audits.append(audit_suite(r.suite.name, r.root, generators, workers, progress=bar.update))
    if not any(g.not_audited is None for audit in audits for g in audit.generators):
        reasons = "; ".join(f"{a.suite}/{g.name}: {g.not_audited}" for a in audits for g in a.generators)
        raise BenchError(f"nothing could be audited, so shortcuts were not looked for: {reasons}. A trivial score "
                         "needs readable image files of both classes (see `bench data check`).")
    return audits


# ------------------------------------------------------------- a detector's errors by format and size (runs)

SIZE_BUCKETS = ((0.1e6, "< 0.1 MP"), (0.5e6, "0.1-0.5 MP"), (2e6, "0.5-2 MP"), (8e6, "2-8 MP"), (float("inf"), ">= 8 MP"))
"""Pixel-count buckets (upper bound, name) of the size breakdown."""
MIN_GROUP = 5
"""Groups smaller than this are shown but not tested."""
FOLLOW_P = 0.01
FOLLOW_GAP = 0.2
"""A class's accuracy "follows" a property when it differs between its groups by at least FOLLOW_GAP (20
points) with an exact-test p-value below FOLLOW_P."""


def size_bucket(width: int, height: int) -> str:
    return next(name for bound, name in SIZE_BUCKETS if width * height < bound)


@dataclass
class GroupAccuracy:
    suite: str
    label: str
    """"real" or "fake"."""
    by: str
    """"format" or "size"."""
    group: str
    """The format (PNG, JPEG, ..., "unreadable") or the size bucket."""
    n: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")


@dataclass
class RunAudit:
    """A run's accuracy per class broken down by file format and size bucket, and the findings where the
    errors follow one of them."""

    folder: str
    detector: str
    weights: str
    prob_precision: str
    groups: list[GroupAccuracy]
    findings: list[str]
    missing: int
    """Scored files that are no longer where the run read them (their format and size are unknown)."""
    tests: list[dict] = field(default_factory=list)
    """Every test made: {suite, label, by, test, p, gap} (a class with two or more groups of MIN_GROUP files)."""

    def to_dict(self) -> dict:
        return {"folder": self.folder, "detector": self.detector, "weights": self.weights,
                "prob_precision": self.prob_precision, "missing": self.missing, "findings": self.findings,
                "tests": self.tests, "groups": [{**asdict(g), "accuracy": g.accuracy} for g in self.groups]}


def follows(groups: Sequence[GroupAccuracy]) -> tuple[float, float] | None:
    """(p-value, accuracy gap) of an exact test that a class's accuracy is the same in every group of at least
    MIN_GROUP files (Fisher's exact test for two groups, the chi-squared test of independence for more);
    None with fewer than two such groups."""
    from scipy.stats import chi2_contingency, fisher_exact

    tested = [g for g in groups if g.n >= MIN_GROUP]
    if len(tested) < 2:
        return None
    table = np.array([[g.correct, g.n - g.correct] for g in tested])
    gap = max(g.accuracy for g in tested) - min(g.accuracy for g in tested)
    if gap == 0:
        return 1.0, 0.0
    if len(tested) == 2:
        return float(fisher_exact(table).pvalue), float(gap)
    if (table.sum(axis=0) == 0).any():
        return 1.0, float(gap)
    return float(chi2_contingency(table).pvalue), float(gap)


def _paths_on_disk(roots: dict, suites: Sequence[str], relatives: Sequence[str]) -> list[Path]:
    """Each scored file's path: its suite's folder joined with the relative path the run stored. A name that
    is not valid UTF-8 was stored as text with backslash escapes (`relative_text`), which is not its name on
    disk: where such a path is not found, the suite's folder is listed once and its files matched by the
    text they are stored as."""
    paths = [Path(roots[suite]) / rel for suite, rel in zip(suites, relatives)]
    lost = {suite for suite, path in zip(suites, paths) if not path.exists()}
    by_text = {suite: {relative_text(found, roots[suite]): found for found in Path(roots[suite]).rglob("*")}
               for suite in lost if Path(roots[suite]).is_dir()}
    return [by_text.get(suite, {}).get(rel, path) if suite in lost else path
            for suite, rel, path in zip(suites, relatives, paths)]


def audit_run(folder: str | Path, workers: int = 4, progress=None) -> RunAudit:
    """One finished run folder: each scored file's header (where run.json says the suite was) and its stored
    logit under the run's probability convention give the run's accuracy per class, format and size bucket."""
    from bench.engine.metrics import scores_and_threshold
    from bench.engine.results import read_run
    from bench.errors import BenchError

    run = read_run(folder)
    roots = run.info.get("suite_roots") or {}
    # a real of a pool shared by several generators (0_real/ beside 1_fake/<generator>/) is a row of each, with
    # the same logit: one file, counted once
    scores = run.scores.drop_duplicates(["suite", "path"])
    missing_roots = sorted(set(scores["suite"]) - set(roots))
    if missing_roots:
        raise BenchError(f"{folder}: run.json records no folder for {', '.join(missing_roots)} (suite_roots), so its "
                         "files cannot be found; rerun it with this version")
    precision = run.metrics.get("prob_precision")
    logits = scores["logit"].to_numpy(dtype=np.float64)
    if precision is None:  # written before the choice was recorded: its metrics read the stored prob
        predicted_fake = scores["prob"].to_numpy(dtype=np.float64) > 0.5
    else:
        values, threshold = scores_and_threshold(logits, precision)
        predicted_fake = values > threshold
    correct = predicted_fake == (scores["label"].to_numpy() == 1)
    paths = _paths_on_disk(roots, scores["suite"], scores["path"])
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        facts = []
        for result in pool.map(lambda item: inspect_file(item[0], item[1], item[2]),
                               zip(paths, scores["label"], scores["path"])):
            facts.append(result)
            if progress is not None:
                progress(1)
    counts: dict[tuple[str, str, str, str], list[int]] = {}
    missing = 0
    for suite, fact, ok, path in zip(scores["suite"], facts, correct, paths):
        label = "fake" if fact.label == 1 else "real"
        missing += not path.exists()
        size = size_bucket(fact.width, fact.height) if fact.width is not None else "unreadable"
        for by, group in (("format", fact.format), ("size", size)):
            tally = counts.setdefault((suite, label, by, group), [0, 0])
            tally[0] += 1
            tally[1] += int(ok)
    groups = [GroupAccuracy(suite, label, by, group, n, right) for (suite, label, by, group), (n, right) in
              sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] != "real", kv[0][2], -kv[1][0]))]
    findings, tests = [], []
    for suite in dict.fromkeys(g.suite for g in groups):
        for label in ("real", "fake"):
            for by in ("format", "size"):
                block = [g for g in groups if (g.suite, g.label, g.by) == (suite, label, by) and g.group != "unreadable"]
                tested = follows(block)
                if tested is None:
                    continue
                test = "Fisher's exact test" if sum(g.n >= MIN_GROUP for g in block) == 2 else "chi-squared test"
                tests.append({"suite": suite, "label": label, "by": by, "test": test, "p": tested[0], "gap": tested[1]})
                if not (tested[0] < FOLLOW_P and tested[1] >= FOLLOW_GAP):
                    continue
                shown = ", ".join(f"{100 * g.accuracy:.1f}% on {g.group} (n={g.n})" for g in block if g.n >= MIN_GROUP)
                findings.append(f"{suite}: the {label} images' accuracy follows the file {by}: {shown} "
                                f"({test} p = {tested[0]:.2g}); the detector's errors depend on the {by}, which a "
                                f"shortcut audit of the suite (`bench audit --suite`) may explain")
    weights = run.info.get("weights") or {}
    return RunAudit(str(folder), run.detector, str(weights.get("name") or weights.get("path") or "?"),
                    precision or "float64 (stored prob)", groups, findings, missing, tests)


def audit_runs(folders: Sequence[str | Path], *, workers: int | None = None, progress: bool = True) -> list[RunAudit]:
    """`audit_run` of each finished run folder (headers read in threads; a progress bar per run)."""
    import os
    import sys

    from tqdm import tqdm

    from bench.engine.results import read_run

    workers = workers or min(8, os.cpu_count() or 1)
    audits = []
    for folder in folders:
        total = len(read_run(folder).scores)
        with tqdm(total=total, unit="file", desc=f"audit {Path(folder).name}", file=sys.stderr, leave=False,
                  disable=(not progress) or None) as bar:
            audits.append(audit_run(folder, workers, progress=bar.update))
    return audits
AUDIT_FILE = "audit.json"
"""What `bench audit --output DIR` writes: the audits as `--json` prints them, which `bench report` shows in
its wild section (bench.outputs.html_report.wild)."""


def write_audit(audits: Sequence[SuiteAudit], folder: str | Path) -> Path:
    """Write the audits to FOLDER/audit.json (atomically) and return its path."""
    from datetime import datetime, timezone

    from bench.engine.store import atomic_write_json, json_safe

    path = Path(folder) / AUDIT_FILE
    atomic_write_json(path, json_safe({"kind": "audit", "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                       "audits": [a.to_dict() for a in audits]}))
    return path
