"""Which paper tables a `--suite` value renders, and the verb's work: build them from the reported numbers
and the results store's latest runs, or write every table in both formats (bench.api.paper_tables)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError, UnknownNameError
from bench.outputs.tables.assemble import Table, build_table
from bench.outputs.tables.render import EXTENSIONS, FORMATS, render
from bench.outputs.tables.reproduced import default_results_root, reproduced_models

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


def tables_for_suite(suite: str) -> tuple[str, ...]:
    name = suite.strip().lower()
    if name in ("diffusion1kstep", "testset5"):
        raise BenchError("the paper has no per-generator table for Diffusion1kStep (Test Set 5); its means "
                         "are in the comparison table: use --suite all.")
    if name not in TABLES_FOR_SUITE:
        raise UnknownNameError("suite", suite, TABLES_FOR_SUITE)
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


def paper_tables(suite: str | None = None, *, results: str | Path | None = None, paper: bool = False,
                 compare: bool = False, every: bool = False) -> PaperTables:
    """The paper's tables for `suite` (default: the comparison table over Test Sets 1-5; `every`: all five
    tables), with reproduced rows from the latest finished runs under `results` unless `paper` (reported
    rows only); `compare` adds reproduced-minus-reported rows and needs a run that covers the suite."""
    if paper and compare:
        raise BenchError("--paper shows the reported rows only, so it cannot --compare; drop one of the two.")
    root = Path(results) if results else default_results_root()
    models = [] if paper else reproduced_models(root)
    note = None
    if not paper and not models:
        message = (f"no finished runs under {root / 'runs'}; "
                   "evaluate with `bench run` or point --results at a results folder")
        if compare:
            raise BenchError(f"nothing to compare: {message}.")
        note = f"{message}; showing the reported rows only."
    suite = suite or "all"
    keys = ALL_TABLES if every else tables_for_suite(suite)
    tables = [build_table(key, models, compare=compare) for key in keys]
    if compare and not every and not any(t.reproduced for t in tables):
        raise BenchError(f"nothing to compare: no finished run under {root / 'runs'} covers {suite}; "
                         f"evaluate it with `bench run --suite {suite}`.")
    return PaperTables(tables, keys, note)


def write_paper_tables(selection: PaperTables, output: str | Path, fmt: str | None, suite: str | None) -> list[Path]:
    """Write the tables: a file, or a folder that gets `<table>.<ext>`; with fmt None (every table), each
    table in both formats into the folder."""
    if fmt is None:
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True)
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
        path = path / f"{name}.{EXTENSIONS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(selection.text(fmt), encoding="utf-8")
    return [path]
