"""Render finished run folders as one self-contained HTML page (tables, curves, provenance).

The page embeds its figures, so it opens offline in any browser and can be shared as one file. Several
run folders (e.g. one per detector) are compared side by side:

    bench report results/runs/<lfm-run> results/runs/<npr-run> --output report.html
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished run folders (results/runs/<run-id>)")
    parser.add_argument("--output", default="report.html", help="the HTML file to write (default: report.html)")
    parser.add_argument("--title", help="page title (default: names the detectors)")


def run(args: argparse.Namespace) -> int:
    from bench import api

    started = time.perf_counter()
    path = api.report([Path(p) for p in args.runs], args.output, title=args.title, progress=not getattr(args, "quiet", False))
    print(f"report: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    print(f"done: {len(args.runs)} folder(s) reported in {time.perf_counter() - started:.1f} s")
    return 0
