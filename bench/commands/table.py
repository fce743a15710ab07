"""Render the LFM paper's tables (methods as rows, ACC/AP per generator, a Mean pair) as Markdown or
booktabs LaTeX. Reported numbers come from the package data (bench/reported); reproduced rows come
from the latest finished run per detector, weights and suite in the results store, marked apart and
never ranked with the paper's. `--suite all` is the comparison table over Test Sets 1-5 with FLOPs
and Params; `--compare` adds reproduced-minus-reported rows; `--all --output DIR` writes every table
in both formats (`--all --paper --output results/tables` refreshes the committed ones)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.errors import BenchError, UnknownNameError
from bench.outputs.tables import EXTENSIONS, FORMATS, build_table, render, reproduced_models
from bench.outputs.tables.reproduced import default_results_root

# --suite value -> the paper tables it renders, in test-set order
TABLES_FOR_SUITE = {
    "forensynths": ("forensynths",), "testset1": ("forensynths",),
    "gangen": ("gangen",), "testset2": ("gangen",),
    "diffusionforensics": ("diffusionforensics",), "testset3": ("diffusionforensics",),
    "ufd": ("ufd",), "testset4": ("ufd",),
    "gan": ("forensynths", "gangen"),
    "diffusion": ("diffusionforensics", "ufd"),
    "all": ("comparison",), "comparison": ("comparison",),
}
ALL_TABLES = ("forensynths", "gangen", "diffusionforensics", "ufd", "comparison")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", metavar="NAME|GROUP",
                        help="forensynths, gangen, diffusionforensics, ufd (or testset1-4), gan, diffusion, "
                             "or all: the comparison table over Test Sets 1-5 (default: all)")
    parser.add_argument("--format", choices=sorted(FORMATS), default=None, help="default: markdown")
    parser.add_argument("--paper", action="store_true", help="reported rows only; do not read the results store")
    parser.add_argument("--compare", action="store_true",
                        help="add a reproduced-minus-reported row under each reproduced row")
    parser.add_argument("--output", metavar="FILE_OR_DIR",
                        help="write there instead of stdout (a folder gets <table>.md or .tex)")
    parser.add_argument("--all", action="store_true", dest="every_table",
                        help="write every table in both formats into the folder given by --output")
    parser.add_argument("--results", metavar="DIR",
                        help="results root to read runs from (default: $BENCH_RESULTS or results)")


def run(args: argparse.Namespace) -> int:
    if args.paper and args.compare:
        raise BenchError("--paper shows the reported rows only, so it cannot --compare; drop one of the two.")
    results = Path(args.results) if args.results else default_results_root()
    models = [] if args.paper else reproduced_models(results)
    if not args.paper and not models:
        message = (f"no finished runs under {results / 'runs'}; "
                   "evaluate with `bench run` or point --results at a results folder")
        if args.compare:
            raise BenchError(f"nothing to compare: {message}.")
        print(f"bench table: {message}; showing the reported rows only.", file=sys.stderr)

    if args.every_table:
        if args.suite or args.format:
            raise BenchError("--all writes every table in both formats; leave out --suite and --format.")
        if not args.output:  # no default: results/tables holds the committed paper-only tables
            raise BenchError("--all needs --output DIR, e.g. `bench table --all --paper --output results/tables`.")
        folder = Path(args.output)
        folder.mkdir(parents=True, exist_ok=True)
        for key in ALL_TABLES:
            table = build_table(key, models, compare=args.compare)
            for fmt in FORMATS:
                path = folder / f"{key}.{EXTENSIONS[fmt]}"
                path.write_text(render(table, fmt), encoding="utf-8")
                print(path)
        return 0

    suite = args.suite or "all"
    keys = _tables_for(suite)
    fmt = args.format or "markdown"
    tables = [build_table(key, models, compare=args.compare) for key in keys]
    if args.compare and not any(t.reproduced for t in tables):
        raise BenchError(f"nothing to compare: no finished run under {results / 'runs'} covers {suite}; "
                         f"evaluate it with `bench run --suite {suite}`.")
    text = "\n".join(render(table, fmt) for table in tables)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    if path.is_dir() or args.output.endswith(("/", os.sep)):
        name = keys[0] if len(keys) == 1 else suite
        path = path / f"{name}.{EXTENSIONS[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(path)
    return 0


def _tables_for(suite: str) -> tuple[str, ...]:
    name = suite.strip().lower()
    if name in ("diffusion1kstep", "testset5"):
        raise BenchError("the paper has no per-generator table for Diffusion1kStep (Test Set 5); its means "
                         "are in the comparison table: use --suite all.")
    if name not in TABLES_FOR_SUITE:
        raise UnknownNameError("suite", suite, TABLES_FOR_SUITE)
    return TABLES_FOR_SUITE[name]
