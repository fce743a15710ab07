"""Robustness sweeps: the same detectors and suites scored under each level of one or more perturbations.

A sweep is many `bench.evaluation.evaluate` calls, one per level (and one clean), each with the level's spec in
its configuration: every level is an ordinary cached `bench run`, so a second sweep, or one that was
killed and started again, reuses every generator already scored. The sweep folder
(``<results>/sweeps/<id>/``) holds:

- ``sweep.json``: detectors, suites, the grids, and per (detector, level) the mean ACC and AP over all
  generators of the suites (the benchmark's "mean" column) with their confidence intervals (each level's
  run's metrics.json) and the run folder they come from;
- ``robustness.md`` / ``robustness.tex``: one table per perturbation (rows detector, columns clean and each
  level, cells ACC/AP in %) through the paper-table renderer (`bench.outputs.tables.render`);
- ``robustness.png`` / ``robustness.pdf``: one panel per perturbation, metric vs level, a line per
  detector (AP solid, ACC dashed) with each level's interval as whiskers, the clean value as a dotted
  horizontal line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from bench.engine.metrics import METRICS as METRIC_SET
from bench.engine.perturb import Grid, Perturbation
from bench.outputs.tables.assemble import Cell, HeaderGroup, Row, Table, format_value

logger = logging.getLogger(__name__)

CLEAN = "clean"
METRICS = ("acc", "ap")



@dataclass
class SweepResult:
    detectors: list[str]
    """Registered names, in the order asked."""
    labels: dict[str, str]
    """Detector name -> row label (display name and weights)."""
    suites: list[str]
    grids: list[Grid]
    values: dict[str, dict[str, dict]] = field(default_factory=dict)
    """level spec (or "clean") -> detector -> {"acc", "ap", "run"}."""
    seconds: float = 0.0
    """Wall time of the sweep (not in sweep.json)."""
    counts: dict[str, int] = field(default_factory=lambda: {"images": 0, "scored": 0, "cached": 0, "reused": 0})
    """Image scores over every level and detector: scored now, from the cache, reused by bytes (not in sweep.json)."""

    def summary(self, folder: Path | None) -> str:
        """One line: levels, image scores (scored now / from the cache), time, where the sweep went."""
        c = self.counts
        reused = f", {c['reused']:,} reused by their bytes" if c["reused"] else ""
        where = f"; sweep folder {folder}" if folder is not None else ""
        return (f"done: {len(self.values)} levels x {len(self.detectors)} detector(s) on {', '.join(self.suites)}, "
                f"{c['images']:,} image scores ({c['scored']:,} scored now, {c['cached']:,} from the cache{reused}) "
                f"in {self.seconds:.1f} s{where}")

    def metric(self, detector: str, level: Perturbation | None, name: str) -> float | None:
        entry = self.values.get(CLEAN if level is None else level.spec, {}).get(detector)
        value = None if entry is None else entry.get(name)
        return None if value is None or value != value else value  # NaN (undefined) prints as a dash

    def to_dict(self) -> dict:
        return {
            "detectors": self.detectors, "labels": self.labels, "suites": self.suites,
            "grids": [{"family": g.family, "parameter": g.parameter,
                       "levels": [{"spec": level.spec, "value": g.value(level)} for level in g.levels]}
                      for g in self.grids],
            "metric": "mean over all generators of the suites",
            "values": self.values,
        }


def level_specs(grids: list[Grid]) -> list[Perturbation | None]:
    """Every level to score, clean first, each once, in the order given."""
    seen: dict[str, Perturbation] = {}
    for grid in grids:
        for level in grid.levels:
            seen.setdefault(level.spec, level)
    return [None, *seen.values()]


def level_label(grid: Grid, level: Perturbation) -> str:
    return f"{grid.parameter}={grid.value(level):g}" if grid.parameter else level.spec


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


def robustness_table(result: SweepResult, grid: Grid, suite_label: str) -> Table:
    """Rows detector, columns clean + each level, cells ACC/AP (%); the best of each column in bold."""
    columns: list[tuple[str, Perturbation | None]] = [(CLEAN, None)]
    columns += [(level_label(grid, level), level) for level in grid.levels]
    groups = [HeaderGroup(label, 2, 2 + 2 * i) for i, (label, _) in enumerate(columns)]
    rows = []
    for detector in result.detectors:
        cells = []
        for _, level in columns:
            for name in METRICS:
                value = _pct(result.metric(detector, level, name))
                cells.append(Cell(value, name, format_value(value, name)))
        rows.append(Row(result.labels.get(detector, detector), "reproduced", cells))
    for index in range(len(columns) * len(METRICS)):
        present = [r.cells[index].value for r in rows if r.cells[index].value is not None]
        for row in rows:
            value = row.cells[index].value
            if value is not None and len(rows) > 1 and round(value, 1) == round(max(present), 1):
                row.cells[index].rank = 1
    title = f"Robustness to {grid.family}" + (f" ({grid.parameter})" if grid.parameter else "")
    caption = (f"{title} on {suite_label}: ACC and AP in %, mean over the suites' generators, each level "
               f"applied to real and fake images before the protocol's resize.")
    return Table(key=f"robustness-{grid.family}", title=title, caption=caption,
                 label=f"tab:robustness-{grid.family}", groups=groups, subheaders=["ACC", "AP"] * len(columns),
                 reported=rows, source_note="lfm-bench sweep; runs listed in sweep.json. Best of each column in bold.",
                 generated_by="`bench sweep`")


def render_tables(result: SweepResult, fmt: str, suite_label: str) -> str:
    from bench.outputs.tables import render

    return "\n".join(render(robustness_table(result, grid, suite_label), fmt) for grid in result.grids)


def plot(result: SweepResult, stem: Path) -> list[Path]:
    """``stem``.png and ``stem``.pdf: the figure `bench report` shows too (bench.outputs.robustness_plot),
    drawn from the sweep.json content."""
    from bench.outputs.html_report.charts import PALETTE
    from bench.outputs.robustness_plot import robustness_figure

    figure = robustness_figure(result.to_dict(), PALETTE)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        # fixed metadata so that the same numbers give the same files
        metadata = {"Software": None} if path.suffix == ".png" else {"CreationDate": None, "Creator": None, "Producer": None}
        figure.savefig(path, dpi=100, metadata=metadata)
    return paths


def sweep_folder(output: str | Path | None, detectors: list[str], suites: list[str], families=()) -> Path:
    """`<results>/sweeps/<stamp>-<detectors>-<suites>-<perturbation families>` (a new folder)."""
    from datetime import datetime, timezone

    from bench.engine.store import ResultsStore, file_stem

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    name = "-".join(part for part in (stamp, "+".join(map(file_stem, detectors)), "+".join(suites),
                                      "+".join(dict.fromkeys(families))) if part)[:120]
    folder = ResultsStore(output).root / "sweeps" / name
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = folder.with_name(f"{name}-{suffix}")
    folder.mkdir(parents=True)
    return folder


def run_sweep(detectors, suites, grids: list[Grid], *, config=None, progress: bool = True):
    """Score the clean level and every level of `grids`, each through `bench.evaluation.evaluate` (cached per
    generator like any run), then write sweep.json, the tables and the plots. Returns (result, folder).
    Under torchrun each level is scored by every process (see bench.evaluation.evaluate); rank 0 alone writes
    the sweep folder, and the others get None as the folder."""
    import dataclasses
    import sys
    import time

    from tqdm import tqdm

    from bench import settings
    from bench.engine import evaluation
    from bench.engine.config import EvalConfig
    from bench.engine.store import ResultsStore, atomic_write_json, json_safe, require_writable_folder
    from bench.engine.suites import discover, scored_generators

    config = config or EvalConfig()
    # where the sweep folder goes, checked as bench run checks its results root: before any level is scored
    require_writable_folder(ResultsStore(config.output).root / "sweeps", "sweeps")
    selection = suites if isinstance(suites, evaluation.SuiteSelection) else evaluation.select_suites(suites, config.data_root, config.weights)
    default = "demo" if selection.demo else None
    names = [d.strip() for d in detectors.split(",")] if isinstance(detectors, str) else list(detectors)
    # loaded once, for every level; --weights as every verb reads it (evaluation.weights_per_detector)
    loaded = [evaluation.load_detector(name, chosen or default)
              for name, chosen in zip(names, evaluation.weights_per_detector(config.weights, names))]
    levels = level_specs(grids)
    # as the runner: a paper suite's extra generators (not columns of its table) are not scored
    n_generators = sum(len(scored_generators(r.suite, discover(r.root, r.suite))[0]) for r in selection.suites)
    result = SweepResult(
        detectors=[item.detector.name for item in loaded],
        labels={item.detector.name: f"{item.detector.display_name} ({item.weights.label})" for item in loaded},
        suites=selection.names, grids=grids,
    )
    started = time.perf_counter()
    # -q (config.progress False) hides this bar as it hides the scoring bars of each level
    with tqdm(total=len(levels) * n_generators, unit="generator", desc="sweep", file=sys.stderr,
              disable=not (progress and config.progress) or settings.torchrun_layout()["rank"] != 0 or None) as bar:
        for level in levels:
            spec = None if level is None else level.spec
            bar.set_postfix_str(spec or CLEAN)
            run = evaluation.evaluate(loaded, selection, config=dataclasses.replace(config, perturbation=spec))
            result.values[spec or CLEAN] = {
                name: {"acc": item.metrics["mean"]["acc"], "ap": item.metrics["mean"]["ap"],
                       "intervals": {k: v for k, v in (item.metrics["mean"].get("intervals") or {}).items()
                                     if k in METRICS and k in METRIC_SET},
                       "run": None if item.folder is None else str(item.folder)}
                for name, item in run.runs.items()
            }
            for item in run.runs.values():
                result.counts["images"] += len(item.scores) + len(item.skipped)
                for key in ("scored", "cached", "reused"):
                    result.counts[key] += item.counts.get(key, 0)
            bar.update(n_generators)
    result.seconds = time.perf_counter() - started
    from bench.engine.distributed import current

    if not current().is_main:  # under torchrun every process scored its share; rank 0 writes the sweep
        return result, None
    folder = sweep_folder(config.output, result.detectors, result.suites, [grid.family for grid in grids])
    suite_label = " + ".join(result.suites)
    atomic_write_json(folder / "sweep.json", json_safe(result.to_dict()))
    (folder / "robustness.md").write_text(render_tables(result, "markdown", suite_label))
    (folder / "robustness.tex").write_text(render_tables(result, "latex", suite_label))
    plot(result, folder / "robustness")
    return result, folder


def ap_changes(result: SweepResult) -> list[tuple[str, str, float | None]]:
    """(detector, level spec, AP at the level minus clean AP) for every level, in points."""
    changes = []
    for grid in result.grids:
        for level in grid.levels:
            for detector in result.detectors:
                clean, value = result.metric(detector, None, "ap"), result.metric(detector, level, "ap")
                delta = None if clean is None or value is None else 100 * (value - clean)
                changes.append((detector, level.spec, delta))
    return changes
