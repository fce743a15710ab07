"""The literature's tables on the in-the-wild sets (bench.outputs.reported.wild), in their layout, with
reproduced rows from the results store beside them (`bench table --suite wild [--compare]`).

A reproduced cell is the run's own metric from metrics.json: a generator's value, or the suite's mean over its
generators (`mean`), never recomputed here. A reproduced row fills only the columns whose reported cells were
evaluated under the same alignment policy as its runs (DDA re-encoded GenImage's fakes as JPEG 96: only a
`bench run --align fakes-jpeg96` row fills that column); the others stay empty and the notes say why. With
`compare`, a row of differences follows each reproduced row whose detector has a reported row.
"""

from __future__ import annotations

from bench.outputs.reported.wild import (
    MEAN,
    WILD_INCONSISTENT,
    WildTableSpec,
    load_cells,
    wild_table_specs,
)
from bench.outputs.tables.assemble import INCONSISTENT_MARK, Cell, HeaderGroup, Row, Table, format_value
from bench.outputs.tables.reproduced import ReproducedModel


def _header(spec: WildTableSpec) -> tuple[list[HeaderGroup], list[str]]:
    groups = [HeaderGroup(column.label, 1, index + 2) for index, column in enumerate(spec.columns)]
    return groups, [column.metric.upper().replace("_", " ") for column in spec.columns]


def _cell(value: float | None, metric: str, signed: bool = False) -> Cell:
    return Cell(value, metric, format_value(value, "acc", signed))


def _reproduced_value(spec: WildTableSpec, model: ReproducedModel, index: int) -> float | None:
    column = spec.columns[index]
    result = model.suites.get(column.suite)
    if result is None:
        return None
    if column.generator == MEAN:
        value = (result.mean or {}).get(column.metric)
        return None if value is None else 100.0 * float(value)
    return result.metric(column.generator, column.metric)


def build_wild_table(key: str, models: list[ReproducedModel] | None = None, compare: bool = False) -> Table:
    """One literature table; `models` add reproduced rows (those with a value in a column of the same
    alignment), `compare` adds reproduced-minus-reported rows for the same detector."""
    spec = wild_table_specs()[key]
    groups, subheaders = _header(spec)
    cells = load_cells(key)
    position = {(c.suite, c.generator, c.metric): i for i, c in enumerate(spec.columns)}
    by_method: dict[str, list] = {method: [None] * len(spec.columns) for method in spec.methods}
    detector_of: dict[str, str] = {}
    align_of: list[str | None] = [None] * len(spec.columns)
    for cell in cells:
        index = position[(cell.suite, cell.generator, cell.metric)]
        by_method[cell.method][index] = cell
        detector_of[cell.method] = cell.detector
        align_of[index] = cell.align
    rows = []
    for method in spec.methods:
        row = Row(method, "reported", [_cell(None if c is None else c.value, spec.columns[i].metric)
                                       for i, c in enumerate(by_method[method])], method)
        for i, c in enumerate(by_method[method]):
            if c is not None and (key, method, c.metric) in WILD_INCONSISTENT:
                row.cells[i].flag = INCONSISTENT_MARK
        rows.append(row)
    table = Table(key, spec.title, spec.caption, f"wild:{key}", groups, subheaders, rows,
                  source_note=f"Reported rows: {spec.source}. Each cell's paper, table, row and column are in "
                              "bench/outputs/reported/wild_literature.csv.",
                  generated_by="`bench table --suite wild`")
    weights = sorted({c.weights for c in cells})
    table.notes += [f"Reported weights: {w}." for w in weights]
    if any(align not in (None, "raw") for align in align_of):
        aligned = [spec.columns[i].label for i, a in enumerate(align_of) if a not in (None, "raw")]
        table.notes.append(f"{', '.join(aligned)}: evaluated under --align {', '.join(sorted({a for a in align_of if a not in (None, 'raw')}))}; "
                           "a reproduced row fills a column only from runs under the same alignment.")
    for method, key_metric in ((m, metric) for (t, m, metric) in WILD_INCONSISTENT if t == key):
        table.notes.append(f"{INCONSISTENT_MARK} {method} {key_metric.upper()}: as printed, although the source's "
                           "own real and fake ACC give another value (bench/outputs/reported/wild.py).")
    for model in models or []:
        values = [(_reproduced_value(spec, model, i) if (align_of[i] or "raw") == model.align else None)
                  for i in range(len(spec.columns))]
        if all(v is None for v in values):
            continue
        table.reproduced.append(Row(model.label, "reproduced", [_cell(v, c.metric) for v, c in zip(values, spec.columns)]))
        for suite in spec.suites:
            result = model.suites.get(suite)
            if result is not None:
                limited = f" (--limit {result.limit_per_class} per class: a sample)" if result.limit_per_class else ""
                table.sources.append(f"{model.label}: {suite} from run {result.run_id}{limited}")
        if not compare:
            continue
        method = next((m for m, d in detector_of.items() if d == model.detector), None)
        if method is None:
            table.notes.append(f"{model.label}: no reported row for detector {model.detector} in this table.")
            continue
        reported_values = [None if c is None else c.value for c in by_method[method]]
        deltas = [None if r is None or p is None else r - p for r, p in zip(values, reported_values)]
        table.reproduced.append(Row(method, "delta", [_cell(d, c.metric, signed=True)
                                                      for d, c in zip(deltas, spec.columns)], method))
    return table

