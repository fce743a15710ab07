"""Shortcut audit: per suite and generator, split by label, the file formats, JPEG quality estimates and
image sizes, with a warning when format, size or JPEG quality alone separates real from fake.

The strength of a shortcut is the AP (fake = positive, in %) of a trivial score built from that one file
property ("is it a PNG", the pixel count, the JPEG quality), in its better direction; the warning fires
when that score's ROC-AUC reaches 90. Only file headers are read. `bench run --perturb reencode:jpeg:q=95`
then re-encodes both classes identically (format-equalised evaluation). See bench/analyses/audit.py.

Exit status: 0 (warnings are findings, printed), 2 when a suite is missing or unknown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.errors import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default="demo", help="NAME|GROUP|PATH[,...] (default: demo)")
    parser.add_argument("--data-root", help="default: $BENCH_DATA or ./datasets")
    parser.add_argument("--workers", type=int, default=None, help="threads reading headers (default: min(8, CPUs))")
    parser.add_argument("--json", action="store_true", help="print the audit as JSON")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _formats(summary) -> str:
    return ", ".join(f"{name} {100 * share:.0f}%" for name, share in summary.formats.items()) or "-"


def _quality(summary) -> str:
    q = summary.jpeg_quality
    if q is None:
        return "-"
    text = f"{q['median']:g}" if q["min"] == q["max"] else f"{q['median']:g} ({q['min']}-{q['max']})"
    return text + (f", {q['approximate']} approx." if q["approximate"] else "")


def _sizes(summary) -> str:
    s = summary.sizes
    if s is None:
        return "-"
    if s["distinct"] == 1:
        return f"all {s['most_common']}"
    return (f"{s['distinct']} sizes, {s['smallest']}..{s['largest']}, "
            f"most {s['most_common']} ({100 * s['most_common_share']:.0f}%)")


def render(audit) -> str:
    from bench.outputs.textable import format_table

    rows = []
    for g in audit.generators:
        for label, summary in (("real", g.real), ("fake", g.fake)):
            rows.append([g.name, label, summary.n, _formats(summary), _quality(summary), _sizes(summary)])
    lines = [f"## {audit.suite} ({audit.root})",
             format_table(["generator", "label", "files", "formats", "JPEG quality", "sizes"], rows,
                          [False, False, True, False, False, False])]
    props = ["format", "size", "jpeg quality"]
    rows = []
    for g in audit.generators:
        by_prop = {s.prop: s for s in g.shortcuts}
        cells = [g.name]
        for prop in props:
            s = by_prop.get(prop)
            cells.append("-" if s is None else f"{_pct(s.ap)} ({s.direction})")
        cells.append(", ".join(s.prop for s in g.warnings) or "")
        rows.append(cells)
    rows.append(["mean AP", *[_pct(audit.mean_ap(p)) for p in props], ""])
    lines += ["", "trivial-score AP (fake = positive), better direction:",
              format_table(["generator", "format", "size", "JPEG quality", "shortcut"], rows)]
    for g in audit.generators:
        for s in g.warnings:
            lines.append(f"WARNING: {audit.suite}/{g.name}: {s.prop} alone separates the classes "
                         f"({s.direction}): trivial AP {_pct(s.ap)}, ROC-AUC {_pct(s.auc)}")
    if not any(g.warnings for g in audit.generators):
        lines.append("no shortcut: neither format, size nor JPEG quality alone separates the classes "
                     "(every trivial ROC-AUC below 90)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bench.analyses.audit import audit_suite
    from bench.engine.suites import default_data_root, discover, resolve_suites_building_demo
    from bench.errors import BenchError

    if args.workers is not None and args.workers < 1:
        raise BenchError("--workers must be at least 1")
    data_root = Path(args.data_root).expanduser() if args.data_root else default_data_root()
    resolved = resolve_suites_building_demo(args.suite, data_root, quiet=args.json)
    missing = [r for r in resolved if not r.exists]
    if missing:
        names = ", ".join(f"{r.suite.name} (expected at {r.root})" for r in missing)
        raise BenchError(f"not found: {names}; see `bench data check` and README.md, 'Getting the paper's data'")
    workers = args.workers or min(8, os.cpu_count() or 1)
    audits = []
    for r in resolved:
        generators = discover(r.root, r.suite)
        if not generators:
            raise BenchError(f"{r.suite.name}: no generator folder with 0_real/1_fake under {r.root}")
        total = sum(len(g.real) + len(g.fake) for g in generators)
        with tqdm(total=total, unit="file", desc=f"audit {r.suite.name}", file=sys.stderr, leave=False,
                  disable=None) as bar:
            audits.append(audit_suite(r.suite.name, r.root, generators, workers, progress=bar.update))
    if args.json:
        from bench.engine.store import json_safe

        print(json.dumps(json_safe([a.to_dict() for a in audits]), indent=1))
        return EXIT_OK
    print("\n\n".join(render(a) for a in audits))
    return EXIT_OK
