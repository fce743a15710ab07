"""Reproduced numbers for the tables, read from the results store (docs/internals.md).

A reproduced row is one (detector, weights) pair. For each suite it takes the latest finished run of
that detector and weights that covered the suite, so a comparison row may draw its test sets from
different runs; every table lists the runs it used. Runs with a perturbation are left out: the paper's
tables are on clean images. FLOPs and Params come from `bench profile` (`profile/<detector>.json`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.engine.results import FinishedRun, finished_runs
from bench.engine.store import file_stem
from bench.engine.uncertainty import UncertaintyOptions, metrics_with_intervals


def default_results_root() -> Path:
    from bench import settings

    return settings.results_root()


@dataclass(frozen=True)
class SuiteResult:
    """One suite's metrics from one run: generator -> {acc, ap, ...} as fractions in [0, 1]."""

    suite: str
    run_id: str
    finished_at: str
    generators: dict[str, dict]
    limit_per_class: int | None = None  # `bench run --limit`: a sample, not the whole test set
    prob_precision: str = "float64"
    """The probabilities its AP was computed from (metrics.json's `prob_precision`); runs written before
    it was recorded used float64."""
    mean: dict | None = None
    """The suite's mean over its generators as metrics.json holds it (bench.engine.metrics.mean_metrics)."""
    notes: tuple[str, ...] = ()
    """metrics.json's top-level notes about this suite (`suite/generator: ...`, `suite (mean): ...`)."""
    root: str | None = None
    """Where the suite's files were (run.json's suite_roots): tells apart two folders of the same name."""
    listing: str | None = None
    """The labels CSV the suite was read from (run.json's suite_listings), or None for a folder."""
    mean_intervals: dict = field(default_factory=dict)
    """The suite mean's intervals ({metric: {"low", "high"} or {"reason"}}), when asked for."""
    run: FinishedRun | None = field(default=None, compare=False, repr=False)
    calibrated_logit: float | None = None

    def _values(self, generator: str) -> dict | None:
        values = self.generators.get(generator)
        if values is None:
            folded = {g.casefold(): v for g, v in self.generators.items()}
            values = folded.get(generator.casefold())
        return values

    def generator_name(self, generator: str) -> str | None:
        """The run's own spelling of a generator name (names match case-insensitively)."""
        if generator in self.generators:
            return generator
        return {g.casefold(): g for g in self.generators}.get(generator.casefold())

    def metric(self, generator: str, name: str) -> float | None:
        """`name` of `generator` in percent, or None if the run lacks it (names match case-insensitively)."""
        values = self._values(generator)
        value = None if values is None else values.get(name)
        return None if value is None else 100.0 * float(value)

    def interval(self, generator: str, name: str) -> dict | None:
        """`name`'s interval entry of `generator` (low/high as fractions, or a reason), or None if the run's
        metrics carry none."""
        values = self._values(generator)
        return None if values is None else (values.get("intervals") or {}).get(name)

    def part(self, generator: str) -> tuple | None:
        """What bench.engine.uncertainty.mean_over needs of one generator (None without scores)."""
        name = self.generator_name(generator)
        if name is None or self.run is None or not (self.run.folder / "scores.parquet").is_file():
            return None
        scores = self.run.scores
        rows = scores[(scores["suite"] == self.suite) & (scores["generator"] == name)]
        return (f"{self.suite}/{name}", rows["label"].to_numpy(), rows["logit"].to_numpy(dtype="float64"),
                self.prob_precision, self.calibrated_logit)


@dataclass
class ReproducedModel:
    """Everything the store holds for one detector with one set of weights."""

    detector: str
    display_name: str
    weights_name: str | None  # "family:tag"; None for a checkpoint given by path
    weights_sha256: str | None
    weights_path: str | None = None
    suites: dict[str, SuiteResult] = field(default_factory=dict)
    profile: dict | None = None
    profile_path: Path | None = None
    protocol: str = "paper"
    """`paper` or `own` (`bench run --protocol`): runs under different protocols are different rows."""
    align: str = "raw"
    """The alignment policy of its runs (`bench run --align`): raw and aligned runs are different rows."""
    resolution: str | None = None
    """`bench run --resolution` of its runs (None: each suite's own policy); another policy is another row."""
    reported_method: str | None = None
    """The paper-table method this detector reproduces (run.json's `reported_method`; for runs written
    before it was recorded, the registered detector's declaration)."""

    @property
    def weights_family(self) -> str | None:
        if self.weights_name and ":" in self.weights_name:
            return self.weights_name.split(":", 1)[0]
        return None

    @property
    def label(self) -> str:
        """Row label, e.g. 'LFM (official weights, reproduced)', 'SAFE (official weights, reproduced, own
        protocol)'."""
        own = ", own protocol" if self.protocol == "own" else ""
        aligned = "" if self.align == "raw" else f", --align {self.align}"
        resolution = "" if self.resolution is None else f", {self.resolution}"
        return f"{self.display_name} ({self.weights_label}, reproduced{own}{aligned}{resolution})"

    @property
    def weights_label(self) -> str:
        if self.weights_name and ":" in self.weights_name:
            return f"{self.weights_name.split(':', 1)[1]} weights"
        if self.weights_path:  # a checkpoint given by path: its file name says more than the full path
            return f"weights {Path(self.weights_path).name}"
        if self.weights_sha256:
            return f"weights {self.weights_sha256[:10]}"
        return "unknown weights"


def _read_json(path: Path) -> dict | None:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # a damaged or half-written file is not a result to show
    return payload if isinstance(payload, dict) else None


def _registered_reported_method(detector: str) -> str | None:
    from bench.errors import BenchError
    from detectors import get_detector

    try:
        return get_detector(detector).reported_method
    except BenchError:
        return None  # a detector this installation does not know: no reported row to match


def load_profile(root: Path, detector: str) -> tuple[dict | None, Path]:
    path = root / "profile" / f"{file_stem(detector)}.json"
    return (_read_json(path) if path.is_file() else None), path


def _scores_of(run: FinishedRun):
    return run.scores if (run.folder / "scores.parquet").is_file() else None


def with_intervals(models: list[ReproducedModel], options: UncertaintyOptions) -> list[ReproducedModel]:
    """The models with every suite's per-generator and mean intervals under `options`: read from the run's
    metrics.json when it stored them with these options, else computed now from its scores.parquet
    (bench.engine.uncertainty), once per run folder."""
    by_run: dict[Path, dict] = {}
    for model in models:
        for suite, result in list(model.suites.items()):
            if result.run is None:
                continue
            if result.run.folder not in by_run:
                by_run[result.run.folder] = metrics_with_intervals(result.run.metrics, lambda r=result.run: _scores_of(r),
                                                                   options)
            metrics = by_run[result.run.folder]
            block = (metrics.get("suites") or {}).get(suite) or {}
            model.suites[suite] = dataclasses.replace(
                result, generators=block.get("generators") or result.generators,
                mean_intervals=(block.get("mean") or {}).get("intervals") or {})
    return models


def reproduced_models(root: str | Path | None = None, only=None,
                      unreadable: list[tuple[Path, str]] | None = None, *,
                      intervals: UncertaintyOptions | None = None) -> list[ReproducedModel]:
    """The latest finished result per detector, weights and suite, grouped by (detector, weights, protocol,
    alignment, resolution policy).
    `only(suite_result)`: keep only the suite results it accepts (e.g. one folder's, for `bench table
    --suite PATH`), so that a later run on another folder of the same name does not hide it. Run folders
    that cannot be read are left out, each added to `unreadable` as (folder, why).
    `intervals`: every value's interval under those options (see `with_intervals`)."""
    root = Path(root) if root is not None else default_results_root()
    models: dict[tuple[str, str, str], ReproducedModel] = {}
    for run in finished_runs(root, unreadable):
        info, metrics = run.info, run.metrics
        if info.get("perturbation"):
            continue
        weights = info.get("weights") or {}
        detector = info.get("detector")
        if not detector:
            continue
        identity = weights.get("sha256") or weights.get("name") or ""
        protocol = info.get("protocol_choice") or "paper"  # runs before schema 2 used the paper's
        align = info.get("align") or "raw"  # runs before alignment existed are raw
        resolution = info.get("resolution_choice")
        key = (detector, identity, protocol, align, resolution)
        model = models.get(key)
        if model is None:
            model = ReproducedModel(
                detector=detector, display_name=info.get("display_name") or detector,
                weights_name=weights.get("name"), weights_sha256=weights.get("sha256"),
                weights_path=weights.get("path"), protocol=protocol, align=align, resolution=resolution,
            )
            models[key] = model
        if "reported_method" in info:
            model.reported_method = info["reported_method"] or ""  # "" = recorded as none
        for suite, payload in (metrics.get("suites") or {}).items():
            generators = (payload or {}).get("generators") or {}
            # runs come oldest first, so a later run of the same suite replaces an earlier one
            notes = tuple(n for n in metrics.get("notes") or [] if n.startswith((f"{suite}/", f"{suite} (mean)")))
            calibration = metrics.get("calibration") or {}
            result = SuiteResult(
                suite, info["run_id"], info.get("finished_at") or "", generators, info.get("limit_per_class"),
                metrics.get("prob_precision") or "float64", (payload or {}).get("mean"), notes,
                (info.get("suite_roots") or {}).get(suite), (info.get("suite_listings") or {}).get(suite),
                mean_intervals=((payload or {}).get("mean") or {}).get("intervals") or {}, run=run,
                calibrated_logit=calibration.get("threshold_logit"),
            )
            if only is None or only(result):
                model.suites[suite] = result
    models = {key: model for key, model in models.items() if model.suites or only is None}
    for model in models.values():
        if model.reported_method is None:
            model.reported_method = _registered_reported_method(model.detector)
        model.profile, path = load_profile(root, model.detector)
        model.profile_path = path if model.profile is not None else None
    ordered = sorted(models.values(), key=lambda m: (m.display_name, m.weights_label))
    return ordered if intervals is None else with_intervals(ordered, intervals)
