"""Tables for suites the paper reports nothing on (your own folders and lists, the demo suites), laid out
like the paper's: one ACC/AP pair per generator and the Mean pair, one row per detector and weights
(`bench table --suite PATH|NAME`). Every value is the run's metrics.json (the Mean is the run's own suite
mean); there are no reported rows, and the table says so. AP cells that float32 ties move carry `*`.
"""

from __future__ import annotations

import re

from bench.engine.metrics import TIE_NOTE_PREFIX
from bench.outputs.tables.assemble import TIE_MARK, Cell, HeaderGroup, Row, Table, format_value, tied
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


def build_suite_table(suite: str, models: list[ReproducedModel], root: str | None = None, why: str | None = None
                      ) -> Table:
    """The table of `suite` from the models' latest runs on it: generators as column pairs in the order the
    runs list them, the run's own Mean pair, sources and notes (ties, shared reals, a Mean over fewer
    generators). `why` says why the suite has no reported rows."""
    found = results_for(suite, models, root)
    generators: dict[str, None] = {}
    for _, result in found:
        generators.update(dict.fromkeys(result.generators))
    groups, start = [], 2
    for generator in [*generators, "Mean"]:
        groups.append(HeaderGroup(generator, 2, start))
        start += 2
    listing = next((result.listing for _, result in found if result.listing), None)
    where = f" ({listing or root})" if root else ""
    table = Table(
        key=suite, title=f"{suite}: reproduced results", label=f"tab:{re.sub(r'[^A-Za-z0-9]+', '-', suite)}",
        caption=f"ACC and AP (%) on {suite}{where} per generator and their mean, reproduced with lfm-bench.",
        groups=groups, subheaders=["ACC", "AP"] * (len(generators) + 1), reported=[],
        source_note=(f"No reported rows: {why or f'the paper reports no numbers on {suite}'}, so this table holds "
                     "reproduced rows only and there is nothing to --compare with. Rows are never ranked."),
    )
    for model, result in found:
        cells = [cell for g in generators for cell in _pair(result.generators.get(g))] + _pair(result.mean)
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
    return table
