"""The evaluation: suites resolved, detectors loaded, every image scored through the one loop (cached per
unit of work, see bench.engine.runner), each detector's run assembled once and written; and `predict`, the
same scoring on loose files. `bench.api` re-exports these; analyses (sweeps, checks, calibration) call them
here, never through the façade.

Policy lives here: which suites a spec means (and the demo fallback when none of a group's suites is on
disk), which weights a detector gets by default (its own on paper suites, `demo` on the demo suites), and
where results go.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from bench.demo import DEMO_NOTE
from bench.engine.calibration import Calibration, fit_calibration
from bench.engine.config import WEIGHTS_RULE, EvalConfig
from bench.engine.decode import DecodeSpec, default_max_pixels
from bench.engine.distributed import start_processes
from bench.engine.inference import pick_device, prepare_scorer
from bench.engine.metrics import probability
from bench.engine.protocol import protocol_resize
from bench.engine.provenance import now_iso
from bench.engine.runner import (
    WRITE_ERRNOS,
    DetectorRun,
    assemble_run,
    min_side_for,
    require_scored_images,
    score_suites,
    write_failure,
    write_run,
)
from bench.engine.scoring import score_images
from bench.engine.store import ResultsStore
from bench.engine.suites import (
    DEMO_FOR_GROUP,
    GROUPS,
    IMAGE_EXTENSIONS,
    README_DATA_SECTION,
    ResolvedSuite,
    default_data_root,
    read_labels_csv,
    resolve_suites_building_demo,
)
from bench.errors import BenchError
from detectors import Detector, LoadedDetector, get_detectors
from detectors import load_detector as _load_detector

log = logging.getLogger(__name__)



def load_detector(detector: str | Detector, weights: str | None = None) -> LoadedDetector:
    """A registered detector with its weights loaded strictly (never a randomly initialised model).

    `weights`: a registered name (`lfm:official`), a tag of the detector's family (`official`, `demo`), a
    checkpoint path, or None for the detector's default weights."""
    return _load_detector(detector, weights)


# ------------------------------------------------------------------------------------------ suites


@dataclass
class SuiteSelection:
    """What a `--suite` spec resolved to: the suites present on disk, and whether they are the demo."""

    suites: list[ResolvedSuite]
    data_root: Path
    note: str | None = None
    """Said to the user before the work: why these suites (e.g. the demo fallback)."""

    @property
    def demo(self) -> bool:
        return bool(self.suites) and all(r.suite.demo for r in self.suites)

    @property
    def names(self) -> list[str]:
        return [r.suite.name for r in self.suites]


def demo_weights_clause(weights: str | None) -> str:
    """Which weights a demo fallback runs with, as the note says it: the bundled demo weights only where
    --weights leaves a detector to its default (weights_per_detector's rule)."""
    if weights is None or not str(weights).strip():
        return "with the bundled demo weights"
    parts = [p.strip() for p in str(weights).split(",")]
    if any("=" in p for p in parts) or any(not p for p in parts):
        return f"with --weights {weights} (the bundled demo weights for any detector it leaves to its default)"
    return f"with the weights given by --weights ({weights})"


def select_suites(spec: str, data_root: str | Path | None = None, weights: str | None = None) -> SuiteSelection:
    """Resolve a suite spec (a name, alias, group, comma list or folder) against a data root.

    A group with none of its suites under the data root falls back to the synthetic demo suites (built
    offline on first use); the note says so, and with which weights (`weights`: the --weights value, so
    that it never claims the bundled demo weights for a checkpoint the user gave). A suite named
    explicitly but missing is an error; a group's missing members are skipped with a warning."""
    root = Path(data_root).expanduser() if data_root else default_data_root()
    resolved = resolve_suites_building_demo(spec, root)
    present = [r for r in resolved if r.exists]
    missing = [r for r in resolved if not r.exists]
    explicit = {part.strip().lower() for part in spec.split(",")} - set(GROUPS)
    if spec.strip().lower() in DEMO_FOR_GROUP and not present:
        demo = resolve_suites_building_demo(DEMO_FOR_GROUP[spec.strip().lower()], root)
        note = (
            f"No paper suite found under {root.resolve()}: running the demo suites "
            f"{' and '.join(r.suite.name for r in demo)} {demo_weights_clause(weights)} instead. "
            f"They are {DEMO_NOTE}. To run the paper's suites, see {README_DATA_SECTION}."
        )
        return SuiteSelection(demo, root, note)
    for r in missing:
        named = r.suite.name in explicit or any(alias in explicit for alias in r.suite.aliases)
        message = f"suite {r.suite.name} not found at {r.root} (published at {r.suite.source})"
        if named:
            raise BenchError(f"{message}. Download it there or pass --data-root; see {README_DATA_SECTION}.")
        log.warning("skipping %s", message)
    if not present:
        raise BenchError(f"none of the suites in {spec!r} is under {root}; see {README_DATA_SECTION}")
    for r in present:
        if r.suite.listing:  # a bad row of a labels CSV is exit 2 before any model is loaded
            read_labels_csv(Path(r.suite.listing), r.root)
    selection = SuiteSelection(present, root)
    if selection.demo:
        selection.note = f"{' and '.join(selection.names)}: {DEMO_NOTE}."
    return selection


def _detector_name(item) -> str:
    if isinstance(item, LoadedDetector):
        return item.detector.name
    return item.name if isinstance(item, Detector) else str(item).strip()


def weights_per_detector(spec: str | None, detectors: Sequence) -> list[str | None]:
    """The weights of each detector (names, Detectors or LoadedDetectors, in order) from one `--weights`
    value, by the one rule every verb follows (WEIGHTS_RULE): None -> each its default; one value -> all;
    `name=weights` pairs -> by name (the others their default; a name that is not among the detectors is
    an error); a comma list -> one per detector in order (an empty entry: that detector's default)."""
    names = [_detector_name(d) for d in detectors]
    if spec is None or not str(spec).strip():
        return [None] * len(names)
    parts = [p.strip() for p in str(spec).split(",")]
    pairs = ["=" in p for p in parts]
    if any(pairs):
        if not all(pairs):
            raise BenchError(f"--weights {spec}: mixes NAME=WEIGHTS pairs with plain entries; use one form ({WEIGHTS_RULE})")
        chosen: dict[str, str] = {}
        for part in parts:
            name, _, weights = (x.strip() for x in part.partition("="))
            if name not in names:
                raise BenchError(f"--weights {spec}: {name!r} is not one of the detectors ({', '.join(names)})")
            if name in chosen or not weights:
                raise BenchError(f"--weights {spec}: {'no weights after' if not weights else 'twice:'} {name}=")
            chosen[name] = weights
        return [chosen.get(name) for name in names]
    if len(parts) == 1:
        return parts * len(names)
    if len(parts) != len(names):
        raise BenchError(f"--weights {spec}: {len(parts)} entries for {len(names)} detectors ({', '.join(names)}); "
                         f"{WEIGHTS_RULE}")
    return [part or None for part in parts]


# ---------------------------------------------------------------------------------------- evaluate


@dataclass
class DetectorResult:
    """One detector's result of an evaluation. Its metrics are fractions in [0, 1] (an AP of 0.862), as in
    metrics.json; the CLI, tables and reports print them x100 with one decimal (86.2)."""

    detector: str
    display_name: str
    weights: str
    weights_sha256: str
    metrics: dict
    """metrics.json content: per suite, per generator and means. Values are fractions in [0, 1] (the CLI
    prints percent: 0.862 -> 86.2), NaN where undefined; counts are integers."""
    scores: pd.DataFrame
    """One row per scored image: suite, generator, path (relative to the suite root), label, logit, prob."""
    skipped: pd.DataFrame
    """Files that could not be used: suite, generator, path, reason."""
    info: dict
    """run.json content (provenance)."""
    folder: Path | None = None
    """The run folder (None when the evaluation was asked not to write one)."""
    counts: dict = field(default_factory=dict)
    """How this call got its images' scores: {"scored": scored now, "cached": from finished cache entries or
    an interrupted run's part files, "reused": by their bytes from the image index}."""


@dataclass(eq=False)
class RunResult(Mapping):
    """What `evaluate` returns: a read-only mapping of detector name -> `DetectorResult`, in the order the
    detectors were given (`result["lfm"]`, `"lfm" in result`, `for name in result`, `result.items()`,
    `result.keys()`, `len(result)`), plus the evaluation's facts as attributes.

    Units: every metric in `result["lfm"].metrics` is a fraction in [0, 1] (AP 0.862), as in metrics.json;
    the CLI, tables and reports print it x100 with one decimal (86.2)."""

    runs: dict[str, DetectorResult]
    """Detector name -> its result (the mapping itself)."""
    suites: list[str]
    demo: bool
    """The suites are the synthetic demo suites."""
    note: str | None
    """What was said before the work (e.g. the demo fallback), or None."""
    device: str
    seconds: float
    """Wall time of the whole evaluation."""
    align: str = "raw"
    """The alignment policy of `runs` (bench.engine.align)."""
    by_align: dict[str, RunResult] = field(default_factory=dict)
    """With several `--align` policies: policy -> that policy's result (`runs` is the first policy's)."""

    def __getitem__(self, detector: str) -> DetectorResult:
        return self.runs[detector]

    def __iter__(self) -> Iterator[str]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def summary(self) -> str:
        """One line: images and detectors, how many were scored now and taken from the cache, the time, the
        device and where the run folders are."""
        runs = [run for each in (self.by_align.values() if self.by_align else [self]) for run in each.runs.values()]
        images = sum(len(run.scores) + len(run.skipped) for run in runs)
        counts = {key: sum(run.counts.get(key, 0) for run in runs) for key in ("scored", "cached", "reused")}
        folders = [str(run.folder) for run in runs if run.folder is not None]
        where = (f"; results in {folders[0]}" if len(folders) == 1 else
                 f"; results in {len(folders)} run folders under {Path(folders[0]).parent}" if folders else "")
        reused = f", {counts['reused']:,} reused by their bytes" if counts["reused"] else ""
        return (f"done: {images:,} image scores from {len(runs)} detector run(s) on {', '.join(self.suites)} "
                f"({counts['scored']:,} scored now, {counts['cached']:,} from the cache{reused}) in "
                f"{self.seconds:.1f} s on {self.device}{where}")


def _loaded_detectors(detectors, weights: str | None, demo: bool) -> list[LoadedDetector]:
    """Names (comma string or list), registered Detectors or LoadedDetectors -> loaded detectors.
    Every weights file is checked before any work starts."""
    if isinstance(detectors, (str, Detector, LoadedDetector)):
        detectors = [detectors]
    items: list[Detector | LoadedDetector] = []
    for item in detectors:
        items.extend([item] if isinstance(item, (Detector, LoadedDetector)) else get_detectors(str(item)))
    default = "demo" if demo else None
    loaded: list[LoadedDetector] = []
    # a loaded detector keeps the weights it was loaded with; the others follow --weights' one rule
    for item, chosen in zip(items, weights_per_detector(weights, items)):
        loaded.append(item if isinstance(item, LoadedDetector) else _load_detector(item, chosen or default))
    if not loaded:
        raise BenchError("no detector given")
    names = [item.detector.name for item in loaded]
    if len(set(names)) != len(names):
        raise BenchError(f"detector names repeat ({', '.join(names)}): evaluate each once")
    return loaded


def evaluate(
    detectors: str | Detector | LoadedDetector | Sequence[str | Detector | LoadedDetector],
    suites: str | SuiteSelection = "all",
    *,
    config: EvalConfig | None = None,
    **options,
) -> RunResult:
    """Evaluate detectors on suites under one protocol; the one evaluation path of the harness.

    `options` are `EvalConfig` fields and override `config` (e.g. `limit=50, device="cpu"`). Scores are
    cached per unit of work (see bench.engine.runner): a second call reuses them, a killed call resumes."""
    config = _config(config, options)
    if isinstance(suites, SuiteSelection):
        selection = suites
    else:
        selection = select_suites(suites, config.data_root, config.weights)
        if selection.note:
            log.info("%s", selection.note)
    loaded = _loaded_detectors(detectors, config.weights, selection.demo)
    if len(config.align_policies) > 1:
        # several alignment policies: the same evaluation once per policy (each its own run folders and cache
        # entries), raw and aligned then shown as pairs (bench.outputs.tables.aligned)
        started = time.perf_counter()
        each = {policy: evaluate(loaded, selection, config=dataclasses.replace(config, align=policy))
                for policy in config.align_policies}
        first = each[config.align_policies[0]]
        return dataclasses.replace(first, by_align=each, seconds=time.perf_counter() - started)
    # under torchrun: join the process group (gloo on CPU, NCCL on CUDA) and use this rank's GPU; each
    # process then scores its share of every unit, and rank 0 alone writes the run folders
    procs, device = start_processes(config.device)
    config = dataclasses.replace(config, device=str(device))
    store = ResultsStore(config.output)
    store.require_writable(runs=config.write_run)
    started_at, started = now_iso(), time.perf_counter()
    runs = [DetectorRun(item) for item in loaded]
    if config.calibrate_on:
        calibrations = _calibrate(loaded, config, selection)
        for run in runs:
            run.calibration = calibrations[run.name]
    try:
        score_suites(runs, selection.suites, store, config)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        raise write_failure(error, store.root / "cache") from error
    assembled_runs = [assemble_run(run, selection.suites, config, selection.data_root, started_at, selection.note)
                      for run in runs]
    for assembled in assembled_runs:  # before any folder is written: no finished run holds an empty suite
        require_scored_images(assembled)
    results: dict[str, DetectorResult] = {}
    for run, assembled in zip(runs, assembled_runs):
        folder = write_run(assembled, store) if config.write_run and procs.is_main else None
        results[run.name] = DetectorResult(
            detector=run.name, display_name=run.loaded.detector.display_name, weights=run.loaded.weights.label,
            weights_sha256=run.loaded.weights.sha256, metrics=assembled.metrics, scores=assembled.scored,
            skipped=assembled.skipped, info=assembled.info, folder=folder, counts=dict(run.counts),
        )
    return RunResult(results, selection.names, selection.demo, selection.note, config.device,
                     time.perf_counter() - started, align=config.align)


def _config(config: EvalConfig | None, options: dict) -> EvalConfig:
    try:
        return dataclasses.replace(config or EvalConfig(), **options)
    except TypeError as error:
        known = ", ".join(f.name for f in dataclasses.fields(EvalConfig))
        raise BenchError(f"{error}; EvalConfig fields: {known}") from error


def calibration_domain_note(calibration: SuiteSelection, evaluated: SuiteSelection) -> str | None:
    """A note when the calibration set and the evaluated suites come from different domains (synthetic demo
    data on one side only): a threshold chosen there says little about ACC on these images."""
    if calibration.demo == evaluated.demo:
        return None
    synthetic, other = (calibration, evaluated) if calibration.demo else (evaluated, calibration)
    side = "calibration set" if calibration.demo else "evaluated suites"
    return (f"calibration on another domain: the {side} ({', '.join(synthetic.names)}) are synthetic demo data "
            f"(bench.demo) and the {'evaluated suites' if calibration.demo else 'calibration set'} "
            f"({', '.join(other.names)}) are not, so the threshold, and ACC@cal, carry that shift; calibrate on "
            "images like the evaluated ones (a validation split of the same source)")


def _calibrate(loaded: list[LoadedDetector], config: EvalConfig, evaluated: SuiteSelection) -> dict[str, Calibration]:
    """Each detector's threshold on the set `config.calibrate_on` names, scored by this same evaluation
    (cached, no run folder) with the evaluation's own options. A calibration set that is one of the
    evaluated suites is refused: a threshold chosen on the test images is an oracle, not a calibration.
    A set from another domain than the evaluated suites is warned about and noted on the calibration."""
    spec = config.calibrate_on
    selection = select_suites(spec, config.data_root)
    evaluated_roots = [r.root for r in evaluated.suites]
    overlap = {r.root.resolve() for r in selection.suites} & {root.resolve() for root in evaluated_roots}
    if overlap:
        raise BenchError(
            f"--calibrate-on {spec}: {', '.join(sorted(map(str, overlap)))} is also being evaluated; choose the "
            "threshold on other images (a validation split such as progan4-val or demo-val)"
        )
    inner = dataclasses.replace(config, calibrate_on=None, calibrate_method="threshold", write_run=False,
                                localisation=False, intervals=False)
    result = evaluate(list(loaded), selection, config=inner)
    note = calibration_domain_note(selection, evaluated)
    if note:
        log.warning("--calibrate-on %s: %s", spec, note)
    return {name: dataclasses.replace(fit_calibration(name, run.scores, config.calibrate_rule, spec, selection.names,
                                                      config.calibrate_method), note=note)
            for name, run in result.runs.items()}


# ----------------------------------------------------------------------------------------- predict


@dataclass
class Prediction:
    path: str
    logit: float
    prob: float
    cropped: bool = False
    """Cropped to an even size first (native protocol, odd width or height)."""

    @property
    def verdict(self) -> str:
        return "fake" if self.prob > 0.5 else "real"


@dataclass
class PredictResult:
    detector: LoadedDetector
    protocol: str
    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of every file that could not be scored."""
    seconds: float = 0.0
    """Wall time of the scoring (decoding included, loading the model not)."""


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given (any extension: the decoder decides), folders searched recursively for images. Entries
    that are not regular files (a FIFO, a link to a device or a dangling one) are kept: the decoder skips
    them with the reason (`bench.engine.files.file_problem`) instead of their vanishing from the listing."""
    paths = [str(p) for p in paths]
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if not p.is_dir() and p.suffix.lower() in IMAGE_EXTENSIONS))
        elif path.exists() or path.is_symlink():
            found.append(path)
        else:
            raise BenchError(f"{raw} does not exist")
    if not found:
        raise BenchError(f"no image files found in {', '.join(paths)}")
    return found


def predict(
    detector: str | Detector | LoadedDetector,
    paths: Iterable[str | Path],
    *,
    weights: str | None = None,
    protocol: str = "resize256",
    device: str = "auto",
    batch_size: int = 32,
    progress: bool = True,
) -> PredictResult:
    """Score image files (or folders of them) with one detector under a test protocol
    (`resize256`, the paper's, or `native`). Unusable files are listed in `skipped`, not fatal.
    `progress`: a bar with an ETA on stderr (on a terminal); `seconds` says how long it took."""
    if batch_size < 1:
        raise BenchError("--batch-size must be at least 1")
    try:
        resize = protocol_resize(protocol)
    except ValueError as error:
        raise BenchError(str(error)) from error
    files = collect_images(paths)
    loaded = detector if isinstance(detector, LoadedDetector) else _load_detector(detector, weights)
    torch_device = pick_device(device)
    scorer = prepare_scorer(loaded.model, loaded.preprocessing, torch_device)
    # native size: images under the model's smallest side or over the pixel limit are skipped with a reason
    spec = DecodeSpec.for_detector(resize, loaded.preprocessing, min_side=min_side_for(loaded),
                                   max_pixels=default_max_pixels())
    result = PredictResult(loaded, protocol)
    name = loaded.detector.name
    started = time.perf_counter()
    bar = tqdm(total=len(files), unit="img", desc=f"scoring with {name}", file=sys.stderr,
               disable=not progress or None)
    for rows in score_images([(f, -1) for f in files], {name: scorer}, spec, device=torch_device,
                             batch_size=batch_size, progress=bar.update):
        for row in rows:
            path = str(files[row.index])
            logit = row.values.get(name)
            if logit is None:
                result.skipped.append((path, row.reasons.get(name) or "not scored"))
                continue
            logit = float(logit)
            if not math.isfinite(logit):  # a broken checkpoint, not a verdict
                raise BenchError(f"detector {name} with weights {loaded.weights.label} ({loaded.weights.path}) gave a "
                                 f"non-finite logit ({logit}) on {path}: the checkpoint or the model is broken")
            result.predictions.append(Prediction(path, logit, probability(logit), row.cropped))
    bar.close()
    result.seconds = time.perf_counter() - started
    return result

