"""Tables for suites the paper reports nothing on (your own folders and lists, the demo suites), laid out
like the paper's: one ACC/AP pair per generator and the Mean pair, one row per detector and weights
(`bench table --suite PATH|NAME`). Every value is the run's metrics.json (the Mean is the run's own suite
mean); there are no reported rows, and the table says so. AP cells that float32 ties move carry `*`.
"""

from __future__ import annotations

import re

from bench.engine.metrics import TIE_NOTE_PREFIX
from bench.outputs.tables.assemble import (
    SPREAD,
    TIE_MARK,
    Cell,
    HeaderGroup,
    Row,
    Table,
    format_value,
    percent_interval,
    spread_values,
    tied,
)
from bench.outputs.tables.reproduced import ReproducedModel, SuiteResult


def _pair(values: dict | None) -> list[Cell]:
    cells = []
    for metric in ("acc", "ap"):
        value = None if not values or values.get(metric) is None else 100.0 * float(values[metric])
        cell = Cell(value, metric, format_value(value, metric))
        if metric == "ap" and value is not None and tied(values):
            cell.flag = TIE_MARK
        cells.append(cell)
    return cells


def results_for(suite: str, models: list[ReproducedModel], root: str | None = None
                ) -> list[tuple[ReproducedModel, SuiteResult]]:
    """Each model's latest result on `suite` (on the folder `root`, when given)."""
    return [(model, model.suites[suite]) for model in models
            if suite in model.suites and (root is None or model.suites[suite].root == root)]


def build_suite_table(suite: str, models: list[ReproducedModel], root: str | None = None, why: str | None = None,
                      *, ci: str | None = None, spread: bool = False, uncertainty=None) -> Table:
    """The table of `suite` from the models' latest runs on it: generators as column pairs in the order the
    runs list them, the run's own Mean pair, sources and notes (ties, shared reals, a Mean over fewer
    generators). `why` says why the suite has no reported rows. `ci`: each value's interval (the models
    loaded with them, reproduced_models(..., intervals=...)); `spread`: each row's SD over generators and
    worst generator."""
    found = results_for(suite, models, root)
    generators: dict[str, None] = {}
    for _, result in found:
        generators.update(dict.fromkeys(result.generators))
    groups, start = [], 2
    for generator in [*generators, "Mean"]:
        groups.append(HeaderGroup(generator, 2, start))
        start += 2
    if spread:
        groups += [HeaderGroup("SD over generators", 2, start), HeaderGroup("Worst generator", 2, start + 2)]
    listing = next((result.listing for _, result in found if result.listing), None)
    where = f" ({listing or root})" if root else ""
    table = Table(
        key=suite, title=f"{suite}: reproduced results", label=f"tab:{re.sub(r'[^A-Za-z0-9]+', '-', suite)}",
        caption=f"ACC and AP (%) on {suite}{where} per generator and their mean, reproduced with lfm-bench.",
        groups=groups, subheaders=["ACC", "AP"] * (len(generators) + 1 + 2 * spread), reported=[], ci_style=ci,
        source_note=(f"No reported rows: {why or f'the paper reports no numbers on {suite}'}, so this table holds "
                     "reproduced rows only and there is nothing to --compare with. Rows are never ranked."),
    )
    shown = False
    for model, result in found:
        cells = [cell for g in generators for cell in _pair(result.generators.get(g))] + _pair(result.mean)
        if ci:
            entries = [((result.generators.get(g) or {}).get("intervals") or {}) for g in generators]
            entries.append(result.mean_intervals or {})
            for index, cell in enumerate(cells):
                if cell.value is not None:
                    cell.low, cell.high = percent_interval(entries[index // 2].get(cell.metric))
                    shown = shown or cell.low is not None
        if spread:
            per_generator = {g: tuple(None if v.get(m) is None else 100.0 * float(v[m]) for m in ("acc", "ap"))
                             for g, v in result.generators.items()}
            extra, labels = spread_values(per_generator)
            spread_cells = [Cell(v, m, format_value(v, m)) for v, m in zip(extra, SPREAD)]
            for cell, label in zip(spread_cells, labels):
                cell.label = label if cell.value is not None else ""
            cells += spread_cells
        table.reproduced.append(Row(model.label, "reproduced", cells))
        limited = f" (--limit {result.limit_per_class} per class: a sample)" if result.limit_per_class else ""
        table.sources.append(f"{model.label}: {suite} from run {result.run_id}{limited}; AP from "
                             + ("float32 probabilities, as the official validate.py" if result.prob_precision == "float32"
                                else "the exact (float64) order"))
        missing = [g for g in generators if g not in result.generators]
        if missing:
            table.notes.append(f"{model.label}: no result on {', '.join(missing)}; its Mean is over its own "
                               f"{len(result.generators)} generator(s)")
        table.notes += [f"{model.label}: {note}" for note in result.notes]
        table.notes += [f"{model.label}: {suite} (mean): {note}" for note in (result.mean or {}).get("notes") or []
                        if not note.startswith(TIE_NOTE_PREFIX)]
    if table.tied:
        table.notes.insert(0, f"{TIE_MARK} AP under the paper's float32 sigmoid, which ties images and so moves it by "
                              "more than 0.1 point; the notes give AP from the exact order of the logits.")
    if shown and uncertainty is not None:
        table.notes.append(
            f"Intervals: {100 * uncertainty.level:g}% {uncertainty.method} bootstrap ({uncertainty.resamples} "
            f"resamples, seed {uncertainty.seed}), the images resampled within each generator with their real/fake "
            "counts kept; the Mean resamples each generator independently (bench.engine.uncertainty)."
            + (" Shown as value +- half the interval's width." if ci == "pm" else " Shown as value [low, high]."))
    if spread:
        table.notes.append("SD over generators: the population standard deviation (as numpy's std) of the row's "
                           "per-generator values; Worst generator: the lowest of them, with its name.")
    return table
