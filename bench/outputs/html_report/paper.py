"""The paper's reported ACC/AP for a run's detector, keyed like the run's metrics.

A detector names the paper-table row it reproduces (`Detector.reported_method`); runs of detectors without
one, or on suites the paper has no table for (the demo suites), get no reported values.
"""

from __future__ import annotations

import logging

from bench.errors import BenchError
from bench.outputs import reported

log = logging.getLogger(__name__)


def reported_method(info: dict) -> str | None:
    """The paper row a run reproduces: run.json's `reported_method` if it records one, else the
    registered detector's declaration (None when the detector is not installed here)."""
    if info.get("reported_method"):
        return str(info["reported_method"])
    from detectors import get_detector

    try:
        return get_detector(str(info.get("detector"))).reported_method
    except BenchError:
        log.info("detector %r is not registered here: no reported values for it", info.get("detector"))
        return None


def reported_values(method: str | None, suite: str, generators: list[str]) -> dict[str, dict[str, float]]:
    """{generator (as the run names it) or "mean": {"acc", "ap"} in percent} of `method` on `suite`.

    Generators match the paper's column keys case-insensitively. The reported mean is only given when the
    run covers exactly the table's columns: over another set of generators the two means are not the
    same quantity."""
    if method is None:
        return {}
    table = next((s for s in reported.table_specs().values() if s.suite == suite), None)
    rows = [r for r in reported.load_rows(table.key)] if table else []
    by_generator = {r.generator.casefold(): r for r in rows if r.method == method}
    out = {}
    for generator in generators:
        row = by_generator.get(generator.casefold())
        if row is not None and row.generator != reported.MEAN:
            out[generator] = {"acc": row.acc, "ap": row.ap}
    columns = {c.key.casefold() for c in table.columns} if table else set()
    same_columns = columns and columns == {g.casefold() for g in generators}
    if same_columns and reported.MEAN in by_generator:
        mean = by_generator[reported.MEAN]
        out[reported.MEAN] = {"acc": mean.acc, "ap": mean.ap}
    elif table is None:
        # a suite with no table of its own (Test Set 5) has its mean in the comparison table
        comparison = reported.table_spec("comparison")
        column = next((c for c in comparison.columns if c.suite == suite), None)
        if column is not None and {g.casefold() for g in column.generators} == {g.casefold() for g in generators}:
            for row in reported.load_rows("comparison"):
                if row.method == method and row.generator == column.key:
                    out[reported.MEAN] = {"acc": row.acc, "ap": row.ap}
    return out
