"""Finished run folders: the schema version they carry and the one reader of them.

`run.json` and `metrics.json` carry `schema_version`. Version 1 is every folder written before the
field existed (same layout); a folder from a newer version than this code knows is refused with a
message to upgrade, rather than misread. Tables, reports, checks and the Python API all read runs here.

Version history:
- 1: run.json, metrics.json, scores.parquet, skipped.csv (no `schema_version` field).
- 2: `schema_version` in run.json and metrics.json; run.json adds `protocol_choice`, `decode`,
  `preprocessing`, `reported_method`, `amp`, `backbone` (a frozen backbone's file, or null).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from bench.errors import BenchError

SCHEMA_VERSION = 2
log = logging.getLogger(__name__)


class NewerSchemaError(BenchError):
    """A run folder written by a newer lfm-bench than this one."""


class UnfinishedRunError(BenchError):
    """A run folder whose run.json says it is not finished (running, or failed): not a result, not damage."""


def _read_json(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BenchError(f"{path} does not exist: not a finished run folder") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchError(f"cannot read {path}: {error}") from error
    if not isinstance(payload, dict):
        raise BenchError(f"{path} is not a JSON object")
    return payload


def check_version(payload: dict, path: Path) -> int:
    version = payload.get("schema_version", 1)
    if not isinstance(version, int) or version < 1:
        raise BenchError(f"{path}: schema_version {version!r} is not a positive whole number")
    if version > SCHEMA_VERSION:
        raise NewerSchemaError(
            f"{path} was written with results schema {version}, newer than this lfm-bench understands "
            f"({SCHEMA_VERSION}); upgrade lfm-bench (pip install -U lfm-bench) to read it"
        )
    return version


@dataclass
class FinishedRun:
    """One finished run folder. `scores` and `skipped` are read when first used."""

    folder: Path
    info: dict
    metrics: dict

    @property
    def run_id(self) -> str:
        return self.info.get("run_id") or self.folder.name

    @property
    def detector(self) -> str:
        return self.info["detector"]

    @property
    def finished_at(self) -> str:
        return self.info.get("finished_at") or ""

    @cached_property
    def scores(self) -> pd.DataFrame:
        """scores.parquet; BenchError (exit 2) naming it when it cannot be read (truncated, not parquet)."""
        path = self.folder / "scores.parquet"
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise BenchError(f"cannot read {path}: {error}; rerun the evaluation (its cached scores are reused) "
                             "for a whole run folder") from error

    @cached_property
    def skipped(self) -> pd.DataFrame:
        path = self.folder / "skipped.csv"
        if not path.is_file() or path.stat().st_size == 0:
            return pd.DataFrame(columns=["path", "reason"])
        return pd.read_csv(path)


def read_run(folder: str | Path) -> FinishedRun:
    """A finished run folder, checked: BenchError when it is not one, or was written by a newer version."""
    folder = Path(folder)
    info = _read_json(folder / "run.json")
    check_version(info, folder / "run.json")
    if info.get("status") != "finished":
        raise UnfinishedRunError(f"{folder} is not a finished run (status {info.get('status')!r})")
    if "detector" not in info:
        raise BenchError(f"{folder / 'run.json'} names no detector")
    metrics = _read_json(folder / "metrics.json")
    check_version(metrics, folder / "metrics.json")
    info.setdefault("run_id", folder.name)
    return FinishedRun(folder, info, metrics)


def finished_runs(root: str | Path, unreadable: list[tuple[Path, str]] | None = None) -> list[FinishedRun]:
    """Every finished run under `root/runs`, oldest first. Unfinished folders are passed over (a run in
    progress is not a result); damaged ones (a truncated metrics.json, a run.json that is not JSON) too,
    each added to `unreadable` as (folder, why) so that the caller can say so; a folder from a newer schema
    is refused."""
    runs = []
    for run_json in sorted(Path(root, "runs").glob("*/run.json")):
        try:
            runs.append(read_run(run_json.parent))
        except (NewerSchemaError, KeyboardInterrupt):
            raise
        except UnfinishedRunError as error:
            log.debug("not a finished run: %s", error)
        except BenchError as error:
            log.debug("unreadable run folder: %s", error)
            if unreadable is not None:
                unreadable.append((run_json.parent, str(error)))
    runs.sort(key=lambda run: (run.finished_at, run.run_id))
    return runs


RUN_LIST_COLUMNS = ("run_id", "detector", "weights", "suites", "perturbation", "protocol", "prob_precision",
                    "calibration", "per_class", "n_images", "acc", "ap", "finished_at")
"""What `bench list runs` shows of each run (and `list_runs` returns): its key settings and headline metrics."""


def run_summary(run: FinishedRun) -> dict:
    """One run's key settings (what distinguishes it from its neighbours) and headline metrics: the
    unweighted mean ACC and AP over all its generators, fractions in [0, 1]."""
    info, mean = run.info, run.metrics.get("mean") or {}
    weights = info.get("weights") or {}
    per_class = info.get("sample_per_class") or info.get("limit_per_class")
    calibration = info.get("calibration") or {}
    return {
        "run_id": run.run_id,
        "detector": run.detector,
        "weights": weights.get("name") or weights.get("path") or "?",
        "suites": list(info.get("suites") or []),
        "perturbation": info.get("perturbation"),
        "protocol": info.get("protocol_choice") or "paper",
        "prob_precision": run.metrics.get("prob_precision") or "float64",
        "calibration": calibration.get("on"),
        "per_class": None if not per_class else (f"sample {per_class}" if info.get("sample_per_class") else f"limit {per_class}"),
        "n_images": sum((info.get("n_images") or {}).values()),
        "acc": mean.get("acc"),
        "ap": mean.get("ap"),
        "finished_at": run.finished_at,
        "folder": str(run.folder),
    }


def list_runs(root: str | Path | None = None, unreadable: list[tuple[Path, str]] | None = None) -> list[dict]:
    """`run_summary` of every finished run under a results root (default: $BENCH_RESULTS or ./results),
    oldest first; run folders that cannot be read are added to `unreadable` as (folder, why)."""
    from bench import settings

    return [run_summary(run) for run in finished_runs(root if root is not None else settings.results_root(),
                                                      unreadable)]


def unreadable_note(unreadable: Sequence[tuple[Path, str]], shown: int = 3) -> str:
    """One sentence naming the run folders that could not be read and why (the first `shown`)."""
    named = "; ".join(f"{folder}: {why}" for folder, why in unreadable[:shown])
    more = f"; and {len(unreadable) - shown} more" if len(unreadable) > shown else ""
    return f"{len(unreadable)} run folder(s) could not be read and are left out ({named}{more})"


def consistency_problems(run: FinishedRun) -> list[str]:
    """Where a finished run's files disagree with each other: scores.parquet's rows against run.json's
    counts (`n_images`, `n_skipped` against skipped.csv) and against metrics.json's `n_real`/`n_fake` per
    generator, and the suites each names. Empty when they agree; counts a file does not record (an older
    run) are not compared. A renderer shows a run only when this is empty: a scores file that lost rows
    beside complete tables would draw curves of other images than the tables count."""
    info, metrics = run.info, run.metrics
    problems = []
    try:
        scores = run.scores
    except BenchError as error:
        return [f"scores.parquet cannot be read ({error.__cause__})"]
    missing = [c for c in ("suite", "generator", "label") if c not in scores.columns]
    if missing:
        return [f"scores.parquet has no column {', '.join(missing)}"]
    metric_suites = metrics.get("suites") or {}
    named = list(info.get("suites") or [])
    if named and set(named) != set(metric_suites):
        problems.append(f"run.json names the suites {', '.join(named)}, metrics.json {', '.join(metric_suites) or 'none'}")
    per_suite = scores.groupby("suite").size()
    images = scores.groupby("suite")["path"].nunique() if "path" in scores.columns else per_suite
    for suite, count in (info.get("n_images") or {}).items():
        # images since shared pools of reals were counted once; rows before (the same unless a pool is shared)
        if count not in (int(images.get(suite, 0)), int(per_suite.get(suite, 0))):
            problems.append(f"{suite}: run.json counts {count} scored images, scores.parquet holds "
                            f"{int(images.get(suite, 0))} ({int(per_suite.get(suite, 0))} rows)")
    unexpected = sorted(set(per_suite.index) - set(metric_suites))
    if unexpected:
        problems.append(f"scores.parquet holds rows of {', '.join(map(str, unexpected))}, which metrics.json does not have")
    per_class = scores.groupby(["suite", "generator", "label"]).size()
    for suite, block in metric_suites.items():
        for generator, values in ((block or {}).get("generators") or {}).items():
            for label, key in ((0, "n_real"), (1, "n_fake")):
                if key in values and int(per_class.get((suite, generator, label), 0)) != values[key]:
                    problems.append(f"{suite}/{generator}: metrics.json has {key} {values[key]}, scores.parquet "
                                    f"{int(per_class.get((suite, generator, label), 0))} rows")
    if "n_skipped" in info and (run.folder / "skipped.csv").is_file():
        try:
            listed = len(run.skipped)
        except (OSError, ValueError) as error:
            problems.append(f"skipped.csv cannot be read ({error})")
        else:
            if listed != info["n_skipped"]:
                problems.append(f"run.json counts {info['n_skipped']} skipped files, skipped.csv lists {listed}")
    return problems
