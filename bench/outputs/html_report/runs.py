"""What a report needs from a finished run folder, read once through `bench.engine.results.read_run`.

The report reads run folders only (run.json, metrics.json, scores.parquet, skipped.csv); it never
re-scores an image or looks at the data root.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.engine.calibration_quality import metrics_with_quality
from bench.engine.results import consistency_problems, read_run
from bench.engine.uncertainty import metrics_with_intervals
from bench.errors import BenchError

RUN_FILES = ("run.json", "metrics.json", "scores.parquet")


@dataclass
class ReportRun:
    """One finished run folder, as the report sees it."""

    folder: Path
    info: dict
    metrics: dict
    scores: pd.DataFrame
    skipped: pd.DataFrame
    label: str = ""
    colour: str = ""

    @property
    def detector(self) -> str:
        return str(self.info.get("detector", "?"))

    @property
    def display_name(self) -> str:
        return str(self.info.get("display_name") or self.detector)

    @property
    def weights_name(self) -> str:
        weights = self.info.get("weights") or {}
        return str(weights.get("name") or weights.get("path") or "?")

    @property
    def suites(self) -> list[str]:
        return list(self.metrics.get("suites", {}))


def read_report_run(folder: str | Path) -> ReportRun:
    """A finished run folder, or a BenchError that says what is wrong with it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BenchError(f"{folder} is not a folder; pass run folders (results/runs/<run-id>)")
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise BenchError(
            f"{folder} is not a finished run folder: it lacks {', '.join(missing)} "
            "(a run folder is what `bench run` writes under results/runs/; `bench report` also takes sweep "
            "folders with sweep.json, `bench explain` folders with explain.json, and folders of PNG figures)"
        )
    finished = read_run(folder)  # unfinished runs and newer schema versions are refused there
    problems = consistency_problems(finished)
    if problems:
        raise BenchError(f"{folder}: its files disagree, so it is not rendered: {'; '.join(problems[:5])}"
                         + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
                         + ". The folder was changed after `bench run` wrote it; rerun the evaluation (its cached "
                           "scores are reused) for a consistent folder")
    try:
        scores = finished.scores
    except (OSError, ValueError) as error:
        raise BenchError(f"{folder}/scores.parquet cannot be read ({error})") from error
    try:
        skipped = finished.skipped.fillna("").astype(str)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise BenchError(f"{folder}/skipped.csv cannot be read ({error})") from error
    # a run written before intervals and calibration quality existed gets them computed now from its scores
    # (bench.engine.uncertainty, bench.engine.calibration_quality), as a newer run stores them
    metrics = metrics_with_quality(metrics_with_intervals(finished.metrics, lambda: scores), lambda: scores)
    return ReportRun(folder=folder, info=finished.info, metrics=metrics, scores=scores, skipped=skipped)


def label_runs(runs: list[ReportRun]) -> None:
    """Give each run the shortest label that tells it apart from the others in the report."""
    candidates = [
        lambda r: r.display_name,
        lambda r: f"{r.display_name} ({r.weights_name})",
        lambda r: f"{r.display_name} ({r.weights_name}, {r.info.get('perturbation') or 'clean'})",
        lambda r: (f"{r.display_name} ({r.weights_name}, {r.info.get('perturbation') or 'clean'}, "
                   f"{'as published' if (r.info.get('align') or 'raw') == 'raw' else '--align ' + r.info['align']})"),
        lambda r: f"{r.display_name} ({r.folder.name})",
    ]
    for make in candidates:
        labels = [make(run) for run in runs]
        if len(set(labels)) == len(labels):
            break
    else:
        labels = [f"{make(run)} #{i + 1}" for i, run in enumerate(runs)]
    for run, label in zip(runs, labels):
        run.label = label
