"""Numbers the literature reports for detectors of this registry on the in-the-wild sets, as data.

Files beside this module:

- `wild_literature.csv`: one row per reported cell: the source table, the method as printed, the registry
  `detector` it is, the suite and generator (`mean` for a set's mean over its generators), the metric
  (acc, ap, r_acc, f_acc, percent), the value, the text it was read from (`printed`, with DDA's spread over
  generators, also in `spread`), the `align` policy the authors evaluated under (bench.engine.align: DDA
  re-encoded GenImage's fakes as JPEG 96), whose `weights` were evaluated, and `source` (paper, table, row,
  column, repository and commit). Only numbers read from a fetched source are here.
- `wild_tables.json`: each table's title, caption, source, column order and method order.

`check_wild_means` is the checksum of the tables that print a mean beside its parts (GenImage's Avg over its
eight subsets; AIGIBench's ACC against its real and fake ACC on balanced subsets); `WILD_INCONSISTENT`
lists, exactly, the cells whose source disagrees with itself (kept as printed).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

MEAN = "mean"
MEAN_TOLERANCE = 0.15
"""As for the paper's tables: parts and mean each rounded to one decimal differ by at most 0.1."""


@dataclass(frozen=True)
class WildCell:
    table: str
    method: str
    detector: str
    suite: str
    generator: str
    metric: str
    value: float
    printed: str
    spread: float | None
    align: str
    weights: str
    source: str


@dataclass(frozen=True)
class WildColumn:
    suite: str
    generator: str
    metric: str
    label: str


@dataclass(frozen=True)
class WildTableSpec:
    key: str
    title: str
    caption: str
    source: str
    columns: tuple[WildColumn, ...]
    methods: tuple[str, ...]

    @property
    def suites(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.suite for c in self.columns))


def _data_file(name: str):
    return resources.files(__package__).joinpath(name)


@cache
def _all_cells() -> tuple[WildCell, ...]:
    with _data_file("wild_literature.csv").open(encoding="utf-8", newline="") as handle:
        return tuple(
            WildCell(table=r["table"], method=r["method"], detector=r["detector"], suite=r["suite"],
                     generator=r["generator"], metric=r["metric"], value=float(r["value"]), printed=r["printed"],
                     spread=float(r["spread"]) if r["spread"] else None, align=r["align"], weights=r["weights"],
                     source=r["source"])
            for r in csv.DictReader(handle)
        )


def load_cells(table: str | None = None) -> list[WildCell]:
    return [c for c in _all_cells() if table is None or c.table == table]


@cache
def wild_table_specs() -> dict[str, WildTableSpec]:
    payload = json.loads(_data_file("wild_tables.json").read_text(encoding="utf-8"))
    return {
        key: WildTableSpec(key, entry["title"], entry["caption"], entry["source"],
                           tuple(WildColumn(**column) for column in entry["columns"]), tuple(entry["methods"]))
        for key, entry in payload["tables"].items()
    }


def tables_for_suite(suite: str) -> tuple[str, ...]:
    """The literature tables with a column on `suite`, in file order."""
    return tuple(key for key, spec in wild_table_specs().items() if suite in spec.suites)


@dataclass(frozen=True)
class WildMeanCheck:
    table: str
    method: str
    what: str
    computed: float
    printed: float

    @property
    def ok(self) -> bool:
        return abs(self.computed - self.printed) <= MEAN_TOLERANCE


WILD_INCONSISTENT = {("aigibench-readme", "SAFE", "acc")}
"""Cells whose source disagrees with itself, kept as printed: AIGIBench prints SAFE's ACC as 78.1 while its
real ACC 89.0 and fake ACC 66.6 on balanced subsets give (89.0 + 66.6) / 2 = 77.8."""


def check_wild_means() -> list[WildMeanCheck]:
    """GenImage Table 3: the Avg against the mean of the eight subsets. AIGIBench: each subset has as many
    reals as fakes (its README), so each subset's ACC is the mean of its real and fake ACC, and so are the
    means over subsets: ACC against (real ACC + fake ACC) / 2."""
    checks = []
    rows: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for cell in _all_cells():
        rows.setdefault((cell.table, cell.method), {})[(cell.generator, cell.metric)] = cell.value
    for (table, method), values in rows.items():
        if table == "genimage-table3":
            parts = [v for (generator, metric), v in values.items() if generator != MEAN and metric == "acc"]
            checks.append(WildMeanCheck(table, method, "acc", sum(parts) / len(parts), values[(MEAN, "acc")]))
        if table == "aigibench-readme":
            balanced = (values[(MEAN, "r_acc")] + values[(MEAN, "f_acc")]) / 2
            checks.append(WildMeanCheck(table, method, "acc", balanced, values[(MEAN, "acc")]))
    return checks
