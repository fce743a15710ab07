"""Assemble a paper table: reported rows from bench.outputs.reported, reproduced rows from the results store.

The result is plain data (`Table`) that the jinja2 templates lay out; nothing here knows LaTeX or
Markdown. Ranks (best bold, second underlined) are computed over the reported rows only, so adding
reproduced rows never changes how the paper's block looks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.engine.metrics import METRICS, PAPER_KEYS, TIE_NOTE_PREFIX
from bench.engine.uncertainty import UncertaintyOptions, mean_over, spread
from bench.outputs import reported
from bench.outputs.reported import MEAN, TableSpec
from bench.outputs.tables.reproduced import ReproducedModel, SuiteResult

HIGHER_IS_BETTER = {**{name: METRICS[name].higher_is_better for name in PAPER_KEYS}, "flops": False, "params": False,
                    "sd": False, "worst": True}
"""The paper's metric columns as bench.engine.metrics declares them, the cost columns (fewer is better), and
the spread columns (`--spread`: a smaller standard deviation over generators, a higher worst generator)."""
CI_STYLES = ("pm", "brackets")
"""How `--ci` prints an interval: `pm` (value +- half its width) or `brackets` (value [low, high])."""


INCONSISTENT_MARK = "†"
"""Marks a reported cell the paper contradicts elsewhere (kept as printed; see the table's notes)."""
TIE_MARK = "*"
"""Marks a reproduced AP that ties of the float32 sigmoid move by more than 0.1 point (metrics.json's notes,
which the table's notes repeat, give AP from the exact order of the logits)."""


def tied(values: dict | None) -> bool:
    """A generator's (or mean's) metrics.json notes say float32 ties move its AP."""
    return any(str(note).startswith(TIE_NOTE_PREFIX) for note in (values or {}).get("notes") or [])


@dataclass
class Cell:
    value: float | None  # None prints as a dash
    metric: str  # acc, ap, flops, params, sd or worst
    text: str = ""
    rank: int | None = None  # 1 best, 2 second best within the reported rows
    flag: str = ""  # INCONSISTENT_MARK on a printed value the paper contradicts (and on deltas against it)
    low: float | None = None
    """The value's interval (percent), shown with `--ci` (reproduced cells)."""
    high: float | None = None
    verdict: str | None = None
    """On a delta cell (`--compare`): where the reported value lies against the reproduced interval:
    "inside", "above" or "below"."""
    widths: float | None = None
    """How many interval widths beyond the interval's end the reported value lies (above or below)."""
    label: str = ""
    """Text beside the value (a worst generator's name)."""


@dataclass
class Row:
    label: str
    kind: str  # "reported", "reproduced" or "delta"
    cells: list[Cell]
    method: str = ""  # the reported method (reported and delta rows)


@dataclass
class HeaderGroup:
    label: str
    span: int
    start: int  # 1-based table column of its first cell (column 1 is the method)


@dataclass
class Table:
    key: str
    title: str
    caption: str
    label: str
    groups: list[HeaderGroup]
    subheaders: list[str]
    reported: list[Row]
    reproduced: list[Row] = field(default_factory=list)  # reproduced rows, each followed by its delta row
    sources: list[str] = field(default_factory=list)  # which runs and profiles the reproduced rows used
    notes: list[str] = field(default_factory=list)
    source_note: str | None = None
    """Replaces the "Reported rows: <paper>" line for tables whose rows are not the paper's (sweeps)."""
    generated_by: str = "`bench table`"
    ci_style: str | None = None
    """`--ci`: print reproduced cells' intervals (CI_STYLES)."""

    @property
    def flagged(self) -> bool:
        """Whether any cell carries INCONSISTENT_MARK."""
        return any(c.flag == INCONSISTENT_MARK for row in [*self.reported, *self.reproduced] for c in row.cells)

    @property
    def tied(self) -> bool:
        """Whether any reproduced AP carries TIE_MARK (float32 ties move it; the notes give both values)."""
        return any(c.flag == TIE_MARK for row in self.reproduced for c in row.cells)

    @property
    def n_values(self) -> int:
        return len(self.subheaders)


def format_value(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None:
        return ""
    sign = "+" if signed else ""
    digits = 2 if metric in ("flops", "params") else 1
    value = round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0: a delta that rounds away prints +0.0
    unit = {"flops": "B", "params": "M"}.get(metric, "")
    return f"{value:{sign}.{digits}f}{unit}"


SPREAD = ["sd", "sd", "worst", "worst"]
"""The cells `--spread` adds to a row: SD over generators (ACC, AP), worst generator (ACC, AP)."""


def _metrics(spec: TableSpec, with_spread: bool = False) -> list[str]:
    names = ["acc", "ap"] * (len(spec.columns) + 1)
    return names + (["flops", "params"] if spec.key == "comparison" else []) + (SPREAD if with_spread else [])


def _header(spec: TableSpec, with_spread: bool = False) -> tuple[list[HeaderGroup], list[str]]:
    groups, start = [], 2
    for column in spec.columns:
        label = f"{column.label} {column.reference}".strip()
        groups.append(HeaderGroup(label, 2, start))
        start += 2
    groups.append(HeaderGroup("Mean", 2, start))
    start += 2
    subheaders = ["ACC", "AP"] * (len(spec.columns) + 1)
    if spec.key == "comparison":
        groups += [HeaderGroup("FLOPs", 1, start), HeaderGroup("Params", 1, start + 1)]
        subheaders += ["", ""]
        start += 2
    if with_spread:
        groups += [HeaderGroup("SD over generators", 2, start), HeaderGroup("Worst generator", 2, start + 2)]
        subheaders += ["ACC", "AP", "ACC", "AP"]
    return groups, subheaders


def reported_values(spec: TableSpec) -> dict[str, list[float | None]]:
    """method -> the row's values in column order (ACC/AP pairs, Mean pair, then FLOPs and Params)."""
    cells: dict[str, dict[str, reported.ReportedRow]] = {}
    for row in reported.load_rows(spec.key):
        cells.setdefault(row.method, {})[row.generator] = row
    costs = {c.method: c for c in reported.load_costs() if c.table == spec.key}
    values = {}
    for entry in spec.methods:
        by_generator = cells[entry.method]
        row: list[float | None] = []
        for key in [c.key for c in spec.columns] + [MEAN]:
            row += [by_generator[key].acc, by_generator[key].ap]
        if spec.key == "comparison":
            cost = costs.get(entry.method)
            row += [cost.flops_g, cost.params_m] if cost else [None, None]
        values[entry.method] = row
    return values


def _mean(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None  # a mean over part of the generators would not be the paper's mean
    return sum(values) / len(values)


def _tied_generator(result: SuiteResult | None, generator: str) -> bool:
    if result is None:
        return False
    folded = {g.casefold(): v for g, v in result.generators.items()}
    return tied(result.generators.get(generator) or folded.get(generator.casefold()))


def tie_flags(spec: TableSpec, model: ReproducedModel) -> list[bool]:
    """Per value of `reproduced_values`: an AP that float32 ties move (a mean: any AP it averages)."""
    flags: list[bool] = []
    if spec.key == "comparison":
        every = False
        for column in spec.columns:
            result = model.suites.get(column.suite)
            moved = any(_tied_generator(result, g) for g in column.generators)
            every = every or moved
            flags += [False, moved]
        return flags + [False, every, False, False]
    result = model.suites.get(spec.suite)
    for column in spec.columns:
        flags += [False, _tied_generator(result, column.key)]
    return flags + [False, any(flags)]


def reproduced_values(spec: TableSpec, model: ReproducedModel) -> tuple[list[float | None], list[str]]:
    """The model's values in the table's column order, and the runs they came from."""
    values: list[float | None] = []
    used: dict[str, SuiteResult] = {}
    if spec.key == "comparison":
        everything = {"acc": [], "ap": []}
        for column in spec.columns:
            result = model.suites.get(column.suite)
            for metric in ("acc", "ap"):
                per_generator = [result.metric(g, metric) if result else None for g in column.generators]
                everything[metric] += per_generator
                values.append(_mean(per_generator))
            if result:
                used[column.suite] = result
        values += [_mean(everything["acc"]), _mean(everything["ap"])]
        profile = model.profile or {}
        # the paper's "FLOPs" are multiply-accumulates as thop counts them, so use the profile's MACs
        macs, params = profile.get("macs"), profile.get("params")
        values += [None if macs is None else macs / 1e9, None if params is None else params / 1e6]
    else:
        result = model.suites.get(spec.suite)
        for column in spec.columns:
            values += [result.metric(column.key, m) if result else None for m in ("acc", "ap")]
        values += [_mean(values[0::2]), _mean(values[1::2])]
        if result:
            used[spec.suite] = result
    sources = []
    for suite, result in used.items():
        limited = f" (--limit {result.limit_per_class} per class: a sample)" if result.limit_per_class else ""
        precision = ("AP from float32 probabilities, as the official validate.py" if result.prob_precision == "float32"
                     else "AP from the exact (float64) order, not the official float32 probabilities")
        sources.append(f"{model.label}: {suite} from run {result.run_id}{limited}; {precision}")
    if spec.key == "comparison" and model.profile is not None:
        sources.append(f"{model.label}: FLOPs and Params from {model.profile_path}")
    return values, sources


def percent_interval(entry: dict | None) -> tuple[float | None, float | None]:
    if not entry or entry.get("low") is None:
        return None, None
    return 100.0 * entry["low"], 100.0 * entry["high"]


def _mean_entries(result: SuiteResult, generators: list[str], options: UncertaintyOptions) -> dict:
    """The intervals of `result`'s mean over `generators`: the run's stored suite mean when it is over exactly
    these generators, else computed from its scores (bench.engine.uncertainty.mean_over)."""
    names = [result.generator_name(g) for g in generators]
    if None in names:
        return {}
    if set(names) == set(result.generators) and result.mean_intervals:
        return result.mean_intervals
    parts = [result.part(g) for g in generators]
    return {} if None in parts else mean_over(parts, options)


def reproduced_intervals(spec: TableSpec, model: ReproducedModel, options: UncertaintyOptions
                         ) -> tuple[list[tuple[float | None, float | None]], list[str]]:
    """(low, high) in percent for each of `reproduced_values`' cells (None where there is none), and the
    reasons given for the missing ones. Per generator and per suite mean from the run's metrics (stored or
    computed on demand, see reproduced.with_intervals); a mean over several suites' generators from their
    scores, each generator resampled independently."""
    cells: list[tuple[float | None, float | None]] = []
    reasons: list[str] = []

    def add(entry: dict | None, where: str) -> None:
        cells.append(percent_interval(entry))
        if entry and entry.get("reason"):
            reasons.append(f"{where}: {entry['reason']}")

    if spec.key == "comparison":
        parts = []
        for column in spec.columns:
            result = model.suites.get(column.suite)
            entries = _mean_entries(result, list(column.generators), options) if result else {}
            for metric in ("acc", "ap"):
                add(entries.get(metric), f"{column.label} mean {metric.upper()}")
            parts += [result.part(g) if result else None for g in column.generators]
        overall = mean_over(parts, options) if parts and None not in parts else {}
        for metric in ("acc", "ap"):
            add(overall.get(metric), f"Mean {metric.upper()}")
        cells += [(None, None), (None, None)]  # FLOPs, Params
    else:
        result = model.suites.get(spec.suite)
        for column in spec.columns:
            for metric in ("acc", "ap"):
                add(result.interval(column.key, metric) if result else None, f"{column.label} {metric.upper()}")
        entries = _mean_entries(result, [c.key for c in spec.columns], options) if result else {}
        for metric in ("acc", "ap"):
            add(entries.get(metric), f"Mean {metric.upper()}")
    return cells, [f"{model.label}, {reason}" for reason in reasons]


def spread_values(per_generator: dict[str, tuple[float | None, float | None]] | None
                   ) -> tuple[list[float | None], list[str]]:
    """The four `--spread` cells (SD ACC, SD AP, worst ACC, worst AP) and the worst cells' generator names,
    from per-generator (ACC, AP) in percent (bench.engine.uncertainty.spread); dashes without values."""
    if not per_generator:
        return [None] * 4, [""] * 4
    sds, worsts, names = [], [], []
    for i, metric in enumerate(("acc", "ap")):
        entry = spread({g: v[i] for g, v in per_generator.items()}, METRICS[metric].higher_is_better)
        sds.append(None if entry is None else entry["std"])
        worsts.append(None if entry is None else entry["worst_value"])
        names.append("" if entry is None else entry["worst"])
    return sds + worsts, ["", "", *names]


def _reported_generators(spec: TableSpec, values: list[float | None]) -> dict | None:
    """A reported row's per-generator (ACC, AP): the per-suite tables' columns (the comparison table's
    columns are test-set means, not generators)."""
    if spec.key == "comparison":
        return None
    return {c.label: (values[2 * i], values[2 * i + 1]) for i, c in enumerate(spec.columns)}


def _reproduced_generators(spec: TableSpec, model: ReproducedModel) -> dict:
    columns = spec.columns if spec.key == "comparison" else [None]
    found = {}
    for column in columns:
        suite = column.suite if column is not None else spec.suite
        result = model.suites.get(suite)
        names = column.generators if column is not None else [c.key for c in spec.columns]
        labels = names if column is not None else [c.label for c in spec.columns]
        for name, label in zip(names, labels):
            found[label] = (result.metric(name, "acc") if result else None, result.metric(name, "ap") if result else None)
    return found


def _verdict(cell: Cell, reported_value: float | None, interval: Cell) -> None:
    """Where the reported value lies against the reproduced interval, on the delta cell."""
    if reported_value is None or interval.low is None:
        return
    low, high = interval.low, interval.high
    if low <= reported_value <= high:
        cell.verdict = "inside"
        return
    cell.verdict = "above" if reported_value > high else "below"
    distance = reported_value - high if reported_value > high else low - reported_value
    cell.widths = distance / (high - low) if high > low else math.inf


def matching_method(spec: TableSpec, model: ReproducedModel) -> str | None:
    """The reported method a reproduced row is compared with: only the row of the method the detector
    reproduces (`Detector.reported_method`, recorded in run.json). Never by weights: an ablation run
    with LFM's weights is not LFM's row."""
    if not model.reported_method:
        return None
    names = {entry.method.casefold(): entry.method for entry in spec.methods}
    return names.get(model.reported_method.casefold())


def _rank(rows: list[Row]) -> None:
    """Mark the best value of each column 1 and the second best 2 (ties share a rank)."""
    if not rows:
        return
    for index, first in enumerate(rows[0].cells):
        present = {round(r.cells[index].value, 2) for r in rows if r.cells[index].value is not None}
        ordered = sorted(present, reverse=HIGHER_IS_BETTER[first.metric])
        for row in rows:
            cell = row.cells[index]
            if cell.value is None:
                continue
            position = ordered.index(round(cell.value, 2))
            cell.rank = position + 1 if position < 2 else None


def _cells(values: list[float | None], metrics: list[str], signed: bool = False,
           labels: list[str] | None = None) -> list[Cell]:
    cells = [Cell(v, m, format_value(v, m, signed)) for v, m in zip(values, metrics, strict=True)]
    for cell, label in zip(cells[len(cells) - len(labels or []):], labels or []):
        cell.label = label if cell.value is not None else ""
    return cells


def _cell_index(spec: TableSpec, generator: str, metric: str) -> int:
    keys = [c.key for c in spec.columns] + [MEAN]
    return 2 * keys.index(generator) + (0 if metric == "acc" else 1)


def _flag_inconsistent(spec: TableSpec, rows: list[Row]) -> None:
    by_method = {row.method: row for row in rows}
    for item in reported.load_inconsistencies(spec.key):
        by_method[item.method].cells[_cell_index(spec, item.generator, item.metric)].flag = INCONSISTENT_MARK


def _notes(spec: TableSpec) -> list[str]:
    notes = []
    corrected = [r for r in reported.load_rows(spec.key) if r.correction]
    corrected_costs = [c for c in reported.load_costs() if c.table == spec.key and c.correction]
    if corrected or corrected_costs:
        count = len(corrected) + len(corrected_costs)
        cells = "cell was" if count == 1 else "cells were"
        notes.append(f"{count} reported {cells} corrected for OCR misreadings (bench/outputs/reported/NOTES.md).")
    labels = {c.key: c.label for c in spec.columns}
    for item in reported.load_inconsistencies(spec.key):
        where = "Mean" if item.generator == MEAN else labels.get(item.generator, item.generator)
        against = "its row's mean" if item.kind == "mean-check" else "another table of the paper"
        if item.generator == MEAN and item.kind == "mean-check":
            against = "the mean of its row's values"
        other = (f"; the reading {item.alternative:.1f} would fit" if item.alternative is not None
                 else "; no single other reading fits")
        notes.append(f"{INCONSISTENT_MARK} {item.method}, {where} {item.metric.upper()}: {item.printed:.1f} as printed, "
                     f"although it disagrees with {against}{other} (bench/outputs/reported/inconsistencies.csv).")
    return notes


def build_table(key: str, models: list[ReproducedModel] | None = None, compare: bool = False, *,
                ci: str | None = None, spread: bool = False, uncertainty: UncertaintyOptions | None = None) -> Table:
    """One paper table; `models` adds reproduced rows, `compare` adds reproduced-minus-reported rows with a
    verdict per cell (the reported value inside, above or below the reproduced interval), `ci` prints the
    reproduced cells' intervals (CI_STYLES), `spread` adds each row's SD over generators and its worst
    generator. Intervals come from `models` loaded with them (reproduced_models(..., intervals=options))."""
    if ci is not None and ci not in CI_STYLES:
        from bench.errors import BenchError

        raise BenchError(f"--ci-style must be one of {', '.join(CI_STYLES)}; got {ci!r}")
    options = uncertainty or UncertaintyOptions()
    spec = reported.table_spec(key)
    metrics = _metrics(spec, spread)
    groups, subheaders = _header(spec, spread)
    references = {r.method: r.reference for r in reported.load_rows(key)}
    paper = reported_values(spec)
    labels = {}
    if spread:
        for method, values in paper.items():
            extra, labels[method] = spread_values(_reported_generators(spec, values))
            paper[method] = values + extra
    rows = [
        Row(f"{entry.method} {references[entry.method]}", "reported",
            _cells(paper[entry.method], metrics, labels=labels.get(entry.method)), entry.method)
        for entry in spec.methods
    ]
    _rank(rows)
    _flag_inconsistent(spec, rows)
    flags = {row.method: [c.flag for c in row.cells] for row in rows}
    table = Table(key, spec.title, spec.caption, spec.label, groups, subheaders, rows, notes=_notes(spec), ci_style=ci)
    own_protocol = False
    absent: list[str] = []
    verdicts = 0
    intervals_shown = False
    for model in models or []:
        values, sources = reproduced_values(spec, model)
        if all(v is None for v in values):
            continue  # nothing of this table in the store for this model
        own_protocol = own_protocol or model.protocol == "own"
        extra, spread_labels = spread_values(_reproduced_generators(spec, model)) if spread else ([], [])
        reproduced_row = Row(model.label, "reproduced", _cells(values + extra, metrics, labels=spread_labels))
        for cell, moved in zip(reproduced_row.cells, [*tie_flags(spec, model), *[False] * len(extra)], strict=True):
            cell.flag = TIE_MARK if moved and cell.value is not None else ""
        if ci or compare:
            bounds, reasons = reproduced_intervals(spec, model, options)
            absent += reasons
            for cell, (low, high) in zip(reproduced_row.cells, bounds):
                if cell.value is not None:
                    cell.low, cell.high = low, high
                    intervals_shown = intervals_shown or low is not None
        table.reproduced.append(reproduced_row)
        table.sources += sources
        suites = [c.suite for c in spec.columns] if spec.key == "comparison" else [spec.suite]
        table.notes += [f"{model.label}: {note}" for suite in dict.fromkeys(suites)
                        for note in (model.suites[suite].notes if suite in model.suites else ())
                        if note.split(": ", 1)[-1].startswith(TIE_NOTE_PREFIX)]
        if not compare:
            continue
        method = matching_method(spec, model)
        if method is None:
            table.notes.append(f"{model.label}: no reported row of the same method to compare with.")
            continue
        deltas = [None if r is None or p is None else r - p
                  for r, p in zip(values + extra, paper[method], strict=True)]
        label = f"{method} {references[method]}"
        delta_cells = _cells(deltas, metrics, signed=True)
        for cell, flag, reported_value, interval in zip(delta_cells, flags[method], paper[method],
                                                        reproduced_row.cells, strict=True):
            cell.flag = flag if cell.value is not None else ""
            if cell.value is not None and cell.metric in PAPER_KEYS:
                _verdict(cell, reported_value, interval)
                verdicts += cell.verdict is not None
        table.reproduced.append(Row(label, "delta", delta_cells, method))
    if table.tied:
        table.notes.insert(0, f"{TIE_MARK} AP under the paper's float32 sigmoid, which ties images and so moves it by "
                              "more than 0.1 point (a mean: one of the APs it averages); the notes give AP from the "
                              "exact order of the logits.")
    if table.reproduced:
        table.notes.append(
            "Reproduced rows: the paper's test protocol (Resize((256, 256)), GANGen-Detection at native size)"
            + (", except rows marked 'own protocol': the detector's own paper's test preprocessing "
               "(bench run --protocol own)." if own_protocol else ".")
        )
    if intervals_shown:
        table.notes.append(
            f"Intervals: {100 * options.level:g}% {options.method} bootstrap of the reproduced values "
            f"({options.resamples} resamples, seed {options.seed}), the images resampled within each generator "
            "with their real/fake counts kept; a mean resamples each generator independently (bench.engine."
            "uncertainty)." + (" Shown as value +- half the interval's width." if ci == "pm" else
                               " Shown as value [low, high]." if ci == "brackets" else ""))
    if verdicts:
        table.notes.append(
            f"Delta rows mark where the reported value lies against the reproduced {100 * options.level:g}% "
            "interval: a check mark when inside (reproduced within the sampling noise of this test set), an up "
            "arrow when the reported value lies above it and a down arrow when below, each followed by the "
            "distance beyond the interval's end in interval widths.")
    for reason in dict.fromkeys(absent):
        table.notes.append(f"No interval: {reason}.")
    if spread:
        table.notes.append(
            "SD over generators: the population standard deviation (as numpy's std) of the row's per-generator "
            "values; Worst generator: the lowest of them, with its name"
            + ("; reported rows of this table have per-test-set means only, so none." if spec.key == "comparison"
               else "."))
    return table
