"""Render the LFM paper's tables (methods as rows, ACC/AP per generator, a Mean pair) as Markdown or
booktabs LaTeX. Reported numbers come from the package data (bench/outputs/reported); reproduced rows come
from the latest finished run per detector, weights and suite in the results store, marked apart and
never ranked with the paper's. `--suite all` is the comparison table over Test Sets 1-5 with FLOPs
and Params; `--compare` adds reproduced-minus-reported rows, each cell marked with where the reported value lies
against the reproduced 95% interval (inside, above or below, and by how many interval widths); `--ci`
prints the reproduced values' intervals; `--spread` adds each row's SD over generators and its worst
generator; `--all --output DIR` writes every table in both formats (`--all --paper --output
results/tables` refreshes the committed ones)."""

from __future__ import annotations

import argparse
import sys

from bench.api import TABLE_FORMATS
from bench.errors import BenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", metavar="NAME|GROUP|PATH",
                        help="forensynths, gangen, diffusionforensics, ufd (or testset1-4), gan, diffusion, "
                             "or all: the comparison table over Test Sets 1-5 (default: all); or a suite the paper "
                             "reports nothing on (a folder, a labels CSV, demo-gan, demo, a suite name your runs "
                             "recorded): the same layout, reproduced rows only")
    parser.add_argument("--data-root", help="where registered suite names resolve (default: $BENCH_DATA or ./datasets)")
    parser.add_argument("--format", choices=sorted(TABLE_FORMATS), default=None, help="default: markdown")
    parser.add_argument("--paper", action="store_true", help="reported rows only; do not read the results store")
    parser.add_argument("--compare", action="store_true",
                        help="add a reproduced-minus-reported row under each reproduced row")
    parser.add_argument("--output", metavar="FILE_OR_DIR",
                        help="write there instead of stdout (a folder gets <table>.md or .tex)")
    parser.add_argument("--all", action="store_true", dest="every_table",
                        help="write every table in both formats into the folder given by --output")
    parser.add_argument("--results", metavar="DIR",
                        help="results root to read runs from (default: $BENCH_RESULTS or results)")
    parser.add_argument("--ci", action="store_true",
                        help="print each reproduced value's confidence interval (from the run's metrics.json, or "
                             "computed from its scores.parquet)")
    parser.add_argument("--ci-style", choices=("pm", "brackets"), default="pm",
                        help="with --ci: pm (95.1 +- 0.8, half the interval's width; default) or brackets "
                             "(95.1 [94.3, 95.9])")
    parser.add_argument("--spread", action="store_true",
                        help="add each row's standard deviation over generators and its worst generator")
    parser.add_argument("--ci-level", type=float, default=0.95, help="interval level (default 0.95)")
    parser.add_argument("--ci-resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--ci-method", choices=("percentile", "bca"), default="percentile",
                        help="default: percentile")
    parser.add_argument("--ci-seed", type=int, default=0, help="seed of the resampling (default 0)")


def run(args: argparse.Namespace) -> int:
    from bench import api

    if args.every_table:
        if args.suite or args.format:
            raise BenchError("--all writes every table in both formats; leave out --suite and --format.")
        if not args.output:  # no default: results/tables holds the committed paper-only tables
            raise BenchError("--all needs --output DIR, e.g. `bench table --all --paper --output results/tables`.")
    options = api.UncertaintyOptions(args.ci_level, args.ci_resamples, args.ci_method, args.ci_seed)  # exit 2 first
    selection = api.paper_tables(args.suite, results=args.results, paper=args.paper, compare=args.compare,
                                 every=args.every_table, data_root=args.data_root,
                                 ci=args.ci_style if args.ci else None, spread=args.spread, uncertainty=options)
    if selection.note:
        print(f"bench table: {selection.note}", file=sys.stderr)
    if args.every_table:
        for path in api.write_paper_tables(selection, args.output, None, None):
            print(path)
        return 0
    fmt = args.format or "markdown"
    if args.output is None:
        sys.stdout.write(selection.text(fmt))
        return 0
    for path in api.write_paper_tables(selection, args.output, fmt, args.suite):
        print(path)
    return 0
