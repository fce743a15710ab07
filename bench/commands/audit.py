"""Shortcut audit: per suite and generator, split by label, the file formats, JPEG quality estimates and
image sizes, with a warning when format, size or JPEG quality alone separates real from fake.

The strength of a shortcut is the AP (fake = positive, in %) of a trivial score built from that one file
property ("is it a PNG", the pixel count, the JPEG quality), in its better direction; the warning fires
when that score's ROC-AUC reaches 90. Only file headers are read. `bench run --perturb reencode:jpeg:q=95`
then re-encodes both classes identically (format-equalised evaluation). See bench/analyses/audit.py.

Exit status: 0 (warnings are findings, printed), 2 when a suite is missing or unknown, laid out wrongly (a
misspelt `0_real`/`1_fake`, as `bench run` refuses it), or when nothing could be audited (no generator
with readable files of both classes). Generators that could not be audited are listed as NOT AUDITED with
the reason, never counted as "no shortcut".
"""

from __future__ import annotations

import argparse
import json

from bench.errors import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default="demo", help="NAME|GROUP|PATH[,...] (default: demo)")
    parser.add_argument("--data-root", help="default: $BENCH_DATA or ./datasets")
    parser.add_argument("--workers", type=int, default=None, help="threads reading headers (default: min(8, CPUs))")
    parser.add_argument("--json", action="store_true", help="print the audit as JSON")


def _format_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _format_formats(summary) -> str:
    return ", ".join(f"{name} {100 * share:.0f}%" for name, share in summary.formats.items()) or "-"


def _format_quality(summary) -> str:
    q = summary.jpeg_quality
    if q is None:
        return "-"
    text = f"{q['median']:g}" if q["min"] == q["max"] else f"{q['median']:g} ({q['min']}-{q['max']})"
    return text + (f", {q['approximate']} approx." if q["approximate"] else "")


def _format_sizes(summary) -> str:
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
            rows.append([g.name, label, summary.n, _format_formats(summary), _format_quality(summary), _format_sizes(summary)])
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
            cells.append("-" if s is None else f"{_format_pct(s.ap)} ({s.direction})")
        cells.append(", ".join(s.prop for s in g.warnings) or "")
        rows.append(cells)
    rows.append(["mean AP", *[_format_pct(audit.mean_ap(p)) for p in props], ""])
    lines += ["", "trivial-score AP (fake = positive), better direction:",
              format_table(["generator", "format", "size", "JPEG quality", "shortcut"], rows)]
    for g in audit.generators:
        for s in g.warnings:
            lines.append(f"WARNING: {audit.suite}/{g.name}: {s.prop} alone separates the classes "
                         f"({s.direction}): trivial AP {_format_pct(s.ap)}, ROC-AUC {_format_pct(s.auc)}")
    for g in audit.generators:
        if g.unreadable:
            path, reason = g.unreadable[0]
            lines.append(f"left out of {audit.suite}/{g.name}: {len(g.unreadable)} unreadable file(s), "
                         f"e.g. {path}: {reason}")
    skipped = [g for g in audit.generators if g.not_audited is not None]
    for g in skipped:
        lines.append(f"NOT AUDITED: {audit.suite}/{g.name}: {g.not_audited}")
    audited = len(audit.generators) - len(skipped)
    if audited and not any(g.warnings for g in audit.generators):
        scope = f" (in the {audited} of {len(audit.generators)} generators audited)" if skipped else ""
        lines.append("no shortcut: neither format, size nor JPEG quality alone separates the classes "
                     f"(every trivial ROC-AUC below 90){scope}")
    elif not audited:
        lines.append(f"nothing audited in {audit.suite}: shortcuts were not looked for")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from bench import api

    audits = api.audit(args.suite, args.data_root, workers=args.workers, progress=not args.quiet, quiet=args.json)
    if args.json:
        print(json.dumps(api.json_safe([a.to_dict() for a in audits]), indent=1))
        return EXIT_OK
    print("\n\n".join(render(a) for a in audits))
    return EXIT_OK
