"""Which paper tables a `--suite` value renders, and the verb's work: build them from the reported numbers
and the results store's latest runs, or write every table in both formats (bench.api.paper_tables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.engine.results import unreadable_note
from bench.engine.store import require_writable_file, require_writable_folder
from bench.engine.suites import DEMO_FOR_GROUP, GROUPS, PAPER_SUITES, SUITES
from bench.engine.uncertainty import UncertaintyOptions
from bench.errors import BenchError, UnknownNameError
from bench.outputs.tables.assemble import CI_STYLES, Table, build_table
from bench.outputs.tables.render import EXTENSIONS, FORMATS, render
from bench.outputs.tables.reproduced import default_results_root, reproduced_models
from bench.outputs.tables.suite_table import build_suite_table

TABLES_FOR_SUITE = {
    "forensynths": ("forensynths",), "testset1": ("forensynths",),
    "gangen": ("gangen",), "testset2": ("gangen",),
    "diffusionforensics": ("diffusionforensics",), "testset3": ("diffusionforensics",),
    "ufd": ("ufd",), "testset4": ("ufd",),
    "gan": ("forensynths", "gangen"),
    "diffusion": ("diffusionforensics", "ufd"),
    "all": ("comparison",), "comparison": ("comparison",),
}
"""--suite value -> the paper tables it renders, in test-set order."""
ALL_TABLES = ("forensynths", "gangen", "diffusionforensics", "ufd", "comparison")


def wild_tables_for(suite: str) -> tuple[str, ...] | None:
    """The literature tables `--suite` names on the in-the-wild sets (`wild`: all of them), or None."""
    from bench.engine.suites import SUITES, WILD_SUITES
    from bench.outputs.reported.wild import tables_for_suite as literature_tables
    from bench.outputs.reported.wild import wild_table_specs

    name = suite.strip().lower()
    if name == "wild":
        return tuple(wild_table_specs())
    name = next((s.name for s in SUITES.values() if name == s.name or name in s.aliases), name)
    if name in WILD_SUITES:
        # a set with no transcribed numbers (docs/wild.md) is one of "your own" suites: reproduced rows only
        return literature_tables(name) or None
    return None


def tables_for_suite(suite: str) -> tuple[str, ...]:
    name = suite.strip().lower()
    wild = wild_tables_for(name)
    if wild is not None:
        return wild
    if name in ("diffusion1kstep", "testset5"):
        raise BenchError("the paper has no per-generator table for Diffusion1kStep (Test Set 5); its means "
                         "are in the comparison table: use --suite all.")
    if name not in TABLES_FOR_SUITE:
        from bench.engine.suites import WILD_SUITES

        raise UnknownNameError("suite", suite, [*TABLES_FOR_SUITE, "wild", *WILD_SUITES])
    return TABLES_FOR_SUITE[name]


@dataclass
class PaperTables:
    tables: list[Table]
    keys: tuple[str, ...]
    note: str | None = None
    """Said to the user beside the tables (no finished run: reported rows only)."""
    files: list[Path] = field(default_factory=list)

    def text(self, fmt: str = "markdown") -> str:
        return "\n".join(render(table, fmt) for table in self.tables)


def own_suite_tables(suite: str, models: list, root: Path, data_root: str | Path | None = None, *,
                     ci: str | None = None, spread: bool = False,
                     uncertainty: UncertaintyOptions | None = None,
                     unreadable: list[tuple[Path, str]] | None = None) -> PaperTables:
    """Tables of suites the paper reports nothing on (bench.outputs.tables.suite_table): a registered suite or
    group (the demo suites), a folder or labels CSV (matched to runs by where their files were and the list
    they were read from), or a suite name as the runs recorded it. Reproduced rows only; a suite no finished
    run covers is an error, which names the run folders that could not be read (`unreadable`)."""
    from bench.engine.suites import resolve_suites

    wanted: list[tuple[str, str | None, str | None]] = []  # (name, folder, listing) of PATH suites
    recorded = {name for model in models for name in model.suites}
    for token in [t.strip() for t in suite.split(",") if t.strip()]:
        try:
            resolved = resolve_suites(token, Path(data_root) if data_root else Path("datasets"))
        except BenchError:
            if token not in recorded:
                known = sorted({*TABLES_FOR_SUITE, *recorded})
                unknown = UnknownNameError("suite", token, known)
                if unreadable:  # the run that recorded it may be one of those that cannot be read
                    raise BenchError(f"{unknown} Among the runs that could be read, none names it: "
                                     f"{unreadable_note(unreadable)}.") from None
                raise unknown from None
            wanted.append((token, None, None))
            continue
        for r in resolved:
            is_path = r.suite.name not in {s.name for s in SUITES.values()}
            wanted.append((r.suite.name, str(r.root) if is_path else None, r.suite.listing))
    tables = []
    for name, folder, listing in wanted:
        if name in PAPER_SUITES:
            raise BenchError(f"{name} is one of the paper's suites: use --suite {name} alone for its table")
        if folder is not None:  # this folder's (or list's) runs only, even if a later run had the same name
            models = reproduced_models(root, only=lambda r, f=folder, li=listing: (r.root, r.listing) == (f, li),
                                       intervals=uncertainty if ci else None)
        table = build_suite_table(name, models, folder, ci=ci, spread=spread, uncertainty=uncertainty)
        if not table.reproduced:
            where = f" on {listing or folder}" if folder else ""
            damaged = f" ({unreadable_note(unreadable)})" if unreadable else ""
            raise BenchError(f"no finished run under {root / 'runs'} covers {name}{where}{damaged}; evaluate "
                             f"it with `bench run --suite {listing or folder or name}` (or point --results at the "
                             "results folder)")
        tables.append(table)
    return PaperTables(tables, tuple(name for name, _, _ in wanted), unreadable_note(unreadable) if unreadable else None)


def paper_tables(suite: str | None = None, *, results: str | Path | None = None, paper: bool = False,
                 compare: bool = False, every: bool = False, data_root: str | Path | None = None,
                 ci: str | None = None, spread: bool = False, uncertainty: UncertaintyOptions | None = None
                 ) -> PaperTables:
    """The paper's tables for `suite` (default: the comparison table over Test Sets 1-5; `every`: all five
    tables), with reproduced rows from the latest finished runs under `results` unless `paper` (reported
    rows only); `compare` adds reproduced-minus-reported rows, each cell marked with where the reported value
    lies against the reproduced interval, and needs a run that covers the suite; `ci` (`pm` or `brackets`)
    prints the reproduced values' intervals; `spread` adds each row's SD over generators and worst
    generator. Intervals are read from the runs' metrics.json when stored under `uncertainty` (default: 95%
    percentile, 2,000 resamples, seed 0), else computed from their scores.parquet (older runs too).

    A suite the paper reports nothing on (a folder, a labels CSV, a demo suite, a name the runs recorded)
    gets a table of the same layout with reproduced rows only (`own_suite_tables`). A group (all, gan,
    diffusion) that no run covers, when runs of its demo fallback exist (what `bench run --suite all` ran on
    a machine without the paper's data), shows the demo suites' tables with a note that says so."""
    if paper and compare:
        raise BenchError("--paper shows the reported rows only, so it cannot --compare; drop one of the two.")
    if paper and ci:
        raise BenchError("--paper shows the reported rows only, which have no intervals; drop --ci or --paper.")
    if ci is not None and ci not in CI_STYLES:
        raise BenchError(f"--ci-style must be one of {', '.join(CI_STYLES)}; got {ci!r}")
    uncertainty = uncertainty or UncertaintyOptions()
    root = Path(results) if results else default_results_root()
    intervals = uncertainty if (ci or compare) else None
    suite_key = (suite or "all").strip().lower()
    if not every and wild_tables_for(suite_key) is not None:
        return _wild_tables(suite_key, tables_for_suite(suite_key), root, paper, compare)
    if not every and suite and suite.strip().lower() not in TABLES_FOR_SUITE \
            and suite.strip().lower() not in ("diffusion1kstep", "testset5"):
        if paper:
            tables_for_suite(suite)  # an unknown name: did-you-mean among the paper's tables
        unreadable = []
        selection = own_suite_tables(suite, reproduced_models(root, intervals=intervals, unreadable=unreadable), root,
                                     data_root, ci=ci, spread=spread, uncertainty=uncertainty, unreadable=unreadable)
        if compare:
            selection.note = "; ".join(filter(None, [
                f"--compare: the paper reports no numbers on {', '.join(selection.keys)}, so there are no reported "
                "rows to subtract; showing the reproduced rows", selection.note]))
        return selection
    # the paper's tables are on the files as published, each suite under its own protocol: aligned runs and
    # runs under another resolution policy are rows of the wild tables and the report, not of these
    unreadable: list[tuple[Path, str]] = []
    models = [] if paper else [m for m in reproduced_models(root, unreadable=unreadable, intervals=intervals)
                               if m.align == "raw" and m.resolution is None]
    # said, not passed over: a truncated metrics.json is not "no runs"
    damaged = unreadable_note(unreadable) if unreadable else ""
    note = None
    if not paper and not models:
        message = (f"no readable finished run under {root / 'runs'}: {damaged}" if damaged else
                   f"no finished runs under {root / 'runs'}; evaluate with `bench run` or point --results at a "
                   "results folder")
        if compare:
            raise BenchError(f"nothing to compare: {message}.")
        note = f"{message}; showing the reported rows only."
    elif damaged:
        note = damaged
    suite = suite or "all"
    keys = ALL_TABLES if every else tables_for_suite(suite)
    tables = [build_table(key, models, compare=compare, ci=ci, spread=spread, uncertainty=uncertainty) for key in keys]
    group = {"comparison": "all"}.get(suite.strip().lower(), suite.strip().lower())
    if not every and models and not any(t.reproduced for t in tables) and group in DEMO_FOR_GROUP:
        demo = GROUPS.get(DEMO_FOR_GROUP[group], [DEMO_FOR_GROUP[group]])
        if any(name in model.suites for model in models for name in demo):
            selection = own_suite_tables(",".join(n for n in demo if any(n in m.suites for m in models)), models, root,
                                         ci=ci, spread=spread, uncertainty=uncertainty)
            selection.note = (f"no finished run under {root / 'runs'} covers the paper's suites of --suite {suite}; "
                              f"showing the demo suites that `bench run --suite {group}` falls back to without the "
                              "paper's data, reproduced rows only (the paper reports no numbers on them"
                              + (", so --compare has nothing to subtract)" if compare else ")"))
            return selection
    if compare and not every and not any(t.reproduced for t in tables):
        raise BenchError(f"nothing to compare: no finished run under {root / 'runs'} covers {suite}; "
                         f"evaluate it with `bench run --suite {suite}`.")
    return PaperTables(tables, keys, note)


def _wild_tables(suite: str, keys: tuple[str, ...], root: Path, paper: bool, compare: bool) -> PaperTables:
    """The literature's tables on the in-the-wild sets. Without a finished run on them the reported cells are
    shown alone (with --compare too: there is nothing to reproduce without the data), and the note says so."""
    from bench.outputs.tables.wild import build_wild_table

    models = [] if paper else reproduced_models(root)
    tables = [build_wild_table(key, models, compare=compare) for key in keys]
    note = None
    if not paper and not any(t.reproduced for t in tables):
        note = (f"no finished run under {root / 'runs'} covers the in-the-wild sets of these tables: showing the "
                f"reported cells only (evaluate with `bench run --suite {suite}` once the data is under the data "
                "root; docs/wild.md says where to get each set)")
    return PaperTables(tables, keys, note)


def write_paper_tables(selection: PaperTables, output: str | Path, fmt: str | None, suite: str | None) -> list[Path]:
    """Write the tables: a file, or a folder that gets `<table>.<ext>`; with fmt None (every table), each
    table in both formats into the folder."""
    if fmt is None:
        folder = require_writable_folder(output, "tables")
        paths = []
        for key, table in zip(selection.keys, selection.tables):
            for each in FORMATS:
                path = folder / f"{key}.{EXTENSIONS[each]}"
                path.write_text(render(table, each), encoding="utf-8")
                paths.append(path)
        return paths
    path = Path(output)
    if path.is_dir() or str(output).endswith(("/", "\\")):
        name = selection.keys[0] if len(selection.keys) == 1 else (suite or "all")
        path = require_writable_folder(path, "tables") / f"{name}.{EXTENSIONS[fmt]}"
    require_writable_file(path, "table")
    path.write_text(selection.text(fmt), encoding="utf-8")
    return [path]
