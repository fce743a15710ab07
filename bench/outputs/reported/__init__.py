"""The numbers the LFM paper (BMVC 2025) reports, as data.

Files beside this module:

- `lfm_bmvc2025.csv`: one row per (table, method, generator), the row's mean as generator `mean`:
  `acc`, `ap` (percent, one decimal) and the text each came from in the OCR'd seed (`printed_acc`,
  `printed_ap`). `correction` is empty when the value is the printed digits with the decimal point put
  back; otherwise it says what was misread and why the value was chosen (see NOTES.md).
- `costs.csv`: the comparison table's FLOPs (billions of multiply-accumulates) and Params (millions).
- `inconsistencies.csv`: places where the paper's numbers disagree with each other, with both readings:
  `printed` (the value the tables use, always) and `alternative` (the reading that would make the
  numbers agree, when exactly one is known). A legible printed number is never "fixed".
- `tables.json`: each table's title, caption, column order and labels, and row order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path

MEAN = "mean"
"""The generator name of a row's reported mean."""

TABLE_KEYS = ("forensynths", "gangen", "diffusionforensics", "ufd", "comparison")
"""The paper's tables, in test-set order; `comparison` is the table over Test Sets 1-5."""

MEAN_TOLERANCE = 0.15
"""How far (in points) the mean of a row's printed values may be from its printed mean: each value and
the mean are rounded to one decimal, so honest rows differ by at most 0.1."""


@dataclass(frozen=True)
class ReportedRow:
    table: str
    method: str
    reference: str
    generator: str
    acc: float
    ap: float
    printed_acc: str
    printed_ap: str
    correction: str = ""


@dataclass(frozen=True)
class ReportedCost:
    table: str
    method: str
    reference: str
    flops_g: float
    params_m: float
    printed_flops: str
    printed_params: str
    correction: str = ""


@dataclass(frozen=True)
class Inconsistency:
    table: str
    method: str
    generator: str
    metric: str
    kind: str  # "mean-check": a row disagrees with its own mean; "cross-table": two tables disagree
    printed: float
    """The value as printed: what the tables show."""
    alternative: float | None
    """The one reading that would make the numbers agree, if there is one (never used as the value)."""
    note: str


@dataclass(frozen=True)
class Column:
    key: str  # a generator name, or testsetN in the comparison table
    label: str  # the paper's column heading
    reference: str = ""
    suite: str | None = None  # comparison table only: the suite behind a test set
    generators: tuple[str, ...] = ()  # comparison table only: that suite's generators


@dataclass(frozen=True)
class MethodEntry:
    method: str
    printed: str  # the row label as it appears in the seed (OCR errors included)


@dataclass(frozen=True)
class TableSpec:
    key: str
    title: str
    caption: str
    label: str
    suite: str | None
    columns: tuple[Column, ...]
    methods: tuple[MethodEntry, ...]

    @property
    def generator_count(self) -> int:
        """How many generators the table's Mean averages over (38 for the comparison table)."""
        if self.key == "comparison":
            return sum(len(c.generators) for c in self.columns)
        return len(self.columns)


def _data_file(name: str):
    return resources.files(__package__).joinpath(name)


def _read_csv(name: str) -> list[dict[str, str]]:
    with _data_file(name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@cache
def table_specs() -> dict[str, TableSpec]:
    payload = json.loads(_data_file("tables.json").read_text(encoding="utf-8"))
    specs = {}
    for key, entry in payload["tables"].items():
        columns = tuple(
            Column(
                key=c["key"], label=c["label"], reference=c.get("reference", ""), suite=c.get("suite"),
                generators=tuple(c.get("generators", ())),
            )
            for c in entry["columns"]
        )
        methods = tuple(MethodEntry(m["method"], m["printed"]) for m in entry["methods"])
        specs[key] = TableSpec(
            key=key, title=entry["title"], caption=entry["caption"], label=entry["label"],
            suite=entry.get("suite"), columns=columns, methods=methods,
        )
    return specs


def table_spec(key: str) -> TableSpec:
    return table_specs()[key]


def source() -> str:
    return json.loads(_data_file("tables.json").read_text(encoding="utf-8"))["source"]


def parse_rows(records: Iterable[dict[str, str]]) -> list[ReportedRow]:
    return [
        ReportedRow(
            table=r["table"], method=r["method"], reference=r["reference"], generator=r["generator"],
            acc=float(r["acc"]), ap=float(r["ap"]), printed_acc=r["printed_acc"], printed_ap=r["printed_ap"],
            correction=r.get("correction") or "",
        )
        for r in records
    ]


@cache
def _all_rows() -> tuple[ReportedRow, ...]:
    return tuple(parse_rows(_read_csv("lfm_bmvc2025.csv")))


def load_rows(table: str | None = None) -> list[ReportedRow]:
    """Every reported row (in the paper's row and column order), or one table's."""
    return [r for r in _all_rows() if table is None or r.table == table]


@cache
def _all_costs() -> tuple[ReportedCost, ...]:
    return tuple(
        ReportedCost(
            table=r["table"], method=r["method"], reference=r["reference"], flops_g=float(r["flops_g"]),
            params_m=float(r["params_m"]), printed_flops=r["printed_flops"], printed_params=r["printed_params"],
            correction=r.get("correction") or "",
        )
        for r in _read_csv("costs.csv")
    )


def load_costs() -> list[ReportedCost]:
    return list(_all_costs())


@cache
def _all_inconsistencies() -> tuple[Inconsistency, ...]:
    return tuple(
        Inconsistency(**{**r, "printed": float(r["printed"]),
                         "alternative": float(r["alternative"]) if r["alternative"] else None})
        for r in _read_csv("inconsistencies.csv")
    )


def load_inconsistencies(table: str | None = None) -> list[Inconsistency]:
    return [i for i in _all_inconsistencies() if table is None or i.table == table]


def write_rows(path: str | Path, rows: Sequence[ReportedRow]) -> None:
    """Write rows in the package's CSV format (what `load_rows` reads back)."""
    names = [f.name for f in fields(ReportedRow)]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            values = astuple(row)
            writer.writerow([f"{v:.1f}" if isinstance(v, float) else v for v in values])


def read_rows(path: str | Path) -> list[ReportedRow]:
    with open(path, encoding="utf-8", newline="") as handle:
        return parse_rows(csv.DictReader(handle))


# --- the mean checksum -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeanCheck:
    table: str
    method: str
    metric: str
    computed: float  # the mean of the row's per-generator (or per-test-set) values
    printed: float  # the row's reported mean

    @property
    def ok(self) -> bool:
        return abs(self.computed - self.printed) <= MEAN_TOLERANCE


def check_means(table: str | None = None) -> list[MeanCheck]:
    """For every row, its values' mean against its printed mean (ACC and AP).

    Suite tables: the unweighted mean over the generators. The comparison table: its Mean is the mean
    over all 38 generators of Test Sets 1-5 (as the official test.py computes its total), so each
    test-set mean is weighted by its number of generators.
    """
    checks = []
    for key in [table] if table else TABLE_KEYS:
        spec = table_spec(key)
        weights = {c.key: (len(c.generators) if c.generators else 1) for c in spec.columns}
        by_method: dict[str, dict[str, ReportedRow]] = {}
        for row in load_rows(key):
            by_method.setdefault(row.method, {})[row.generator] = row
        for method, cells in by_method.items():
            total = sum(weights.values())
            for metric in ("acc", "ap"):
                computed = sum(getattr(cells[c], metric) * w for c, w in weights.items()) / total
                checks.append(MeanCheck(key, method, metric, computed, getattr(cells[MEAN], metric)))
    return checks


def cross_table_checks() -> list[tuple[str, str, str, float, float]]:
    """(method, test set, metric, comparison-table value, suite-table mean) for every method that is in
    both the comparison table and a suite table."""
    suite_means = {(r.table, r.method): r for r in load_rows() if r.generator == MEAN and r.table != "comparison"}
    table_of_suite = {table_spec(k).suite: k for k in TABLE_KEYS if k != "comparison"}
    out = []
    for row in load_rows("comparison"):
        if row.generator == MEAN:
            continue
        column = next(c for c in table_spec("comparison").columns if c.key == row.generator)
        other = suite_means.get((table_of_suite.get(column.suite), row.method))
        if other is None:
            continue
        for metric in ("acc", "ap"):
            out.append((row.method, row.generator, metric, getattr(row, metric), getattr(other, metric)))
    return out
