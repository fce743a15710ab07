"""Shortcut audit: per suite and generator, split by label, the file formats, JPEG quality estimates and
image sizes, with a warning when format, size or JPEG quality alone separates real from fake.

The strength of a shortcut is the AP and ROC-AUC (fake = positive, in %) of a trivial score built from that
one file property ("is it a PNG", the pixel count, the JPEG quality), in its better direction; both are
always shown, and the warning is in proportion: moderate from a ROC-AUC of 65, strong from 90. A score
that does not separate the classes is said to, with no direction. Only file headers are read.
`bench run --perturb reencode:jpeg:q=95` then re-encodes both classes identically (format-equalised
evaluation). See bench/analyses/audit.py.

`--run RUN_DIR` (repeatable): a detector's accuracy on that run broken down by file format and size bucket
within each class, with a finding where its errors follow the format or size (exact tests).

For each `--align` policy the suite audit also gives the trivial AP of the files as the policy re-encodes them
(about 50 when nothing is left) and recommends the policy that removes the format and quality shortcuts it
found (bench/analyses/audit_align.py); `--output DIR` writes the suite audits to DIR/audit.json for
`bench report`'s wild section.

Exit status: 0 (warnings are findings, printed), 2 when a suite is missing or unknown, laid out wrongly (a
misspelt `0_real`/`1_fake`, as `bench run` refuses it), or when nothing could be audited (no generator
with readable files of both classes). Generators that could not be audited are listed as NOT AUDITED with
the reason, never counted as "no shortcut".
"""

from __future__ import annotations

import argparse
import json
import time

from bench.errors import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default=None, help="NAME|GROUP|PATH[,...] (default: demo, unless --run is given)")
    parser.add_argument("--run", dest="run_dirs", action="append", default=[], metavar="RUN_DIR",
                        help="a finished run folder: its accuracy per class by file format and size (repeatable)")
    parser.add_argument("--data-root", help="default: $BENCH_DATA or ./datasets")
    parser.add_argument("--workers", type=int, default=None, help="threads reading headers (default: min(8, CPUs))")
    parser.add_argument("--json", action="store_true", help="print the audit as JSON")
    parser.add_argument("--output", metavar="DIR",
                        help="also write DIR/audit.json, which `bench report` shows beside runs (its wild section)")


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
            cells.append("-" if s is None else _format_shortcut(s))
        cells.append(", ".join(f"{s.prop} ({s.strength})" for s in g.warnings) or "none")
        rows.append(cells)
    rows.append(["mean AP", *[_format_pct(audit.mean_ap(p)) for p in props], ""])
    lines += ["", "trivial scores (fake = positive): AP / ROC-AUC, and the direction where it separates the classes "
                  "(AP's chance level is the share of fakes):",
              format_table(["generator", "format", "size", "JPEG quality", "shortcut"], rows)]
    for g in audit.generators:
        for s in g.warnings:
            alone = "alone separates the classes" if s.strength == "strong" else "alone partly separates the classes"
            lines.append(f"WARNING ({s.strength} shortcut): {audit.suite}/{g.name}: {s.prop} {alone} "
                         f"({s.direction}): trivial AP {_format_pct(s.ap)} (chance {_format_pct(s.chance_ap)}), "
                         f"ROC-AUC {_format_pct(s.auc)}; a detector's AP on this generator may come from it "
                         "(check with `bench audit --run RUN_DIR`, or `--perturb reencode:jpeg:q=95`)")
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
                     f"(every trivial ROC-AUC below 65){scope}")
    elif not audited:
        lines.append(f"nothing audited in {audit.suite}: shortcuts were not looked for")
    if audit.alignment and audited:
        lines += ["", render_alignment(audit)]
    return "\n".join(lines)


def render_alignment(audit) -> str:
    """The trivial-score AP before and after each --align policy (mean over generators) and the recommendation."""
    from bench.outputs.textable import format_table

    alignment = audit.alignment
    props = ["format", "size", "jpeg quality"]
    rows = [["raw (as published)", *[_format_pct(audit.mean_ap(p)) for p in props], ", ".join(alignment["before"]) or "none"]]
    for policy, effect in alignment["policies"].items():
        means = effect["mean_trivial_ap"]
        rows.append([f"--align {policy}", *[_format_pct(means[p]) for p in props], ", ".join(effect["warnings"]) or "none"])
    chance = audit.mean_chance_ap()
    at_chance = f"{_format_pct(chance)}, the share of fakes" if chance is not None else "the share of fakes"
    lines = [f"trivial-score AP before and after alignment (mean over generators; {at_chance} = the headers tell "
             "nothing):",
             format_table(["policy", "format", "size", "JPEG quality", "shortcuts left"], rows,
                          [False, True, True, True, False])]
    if alignment["recommended"]:
        lines.append(f"RECOMMENDED: bench run --align {alignment['recommended']} (or --align raw,{alignment['recommended']} "
                     "to see both)")
    lines += [f"  {line}" for line in alignment["advice"]]
    return "\n".join(lines)


def _format_shortcut(s) -> str:
    """A trivial score's cell: AP / ROC-AUC, then its direction and strength, or that it does not separate."""
    figures = f"{_format_pct(s.ap)} / {_format_pct(s.auc)}"
    if s.strength == "none":
        return f"{figures} (no separation)" if not s.direction.startswith("all ") else f"{figures} ({s.direction})"
    return f"{figures} ({s.direction}, {s.strength})"


def render_run(audit) -> str:
    """A run's accuracy per class by file format and size bucket, and the findings."""
    from bench.outputs.textable import format_table

    rows = [[g.suite, g.label, g.by, g.group, g.n, f"{100 * g.accuracy:.1f}"] for g in audit.groups]
    lines = [f"## run {audit.folder}: {audit.detector} ({audit.weights}); ACC at 0.5 under {audit.prob_precision}",
             format_table(["suite", "class", "by", "group", "files", "ACC"], rows,
                          [False, False, False, False, True, True])]
    if audit.missing:
        lines.append(f"{audit.missing} scored file(s) are no longer where the run read them: counted as unreadable")
    for test in audit.tests:
        lines.append(f"{test['suite']}, {test['label']} images by {test['by']}: accuracy gap "
                     f"{100 * test['gap']:.1f} points between groups of 5 or more, {test['test']} p = {test['p']:.2g}")
    lines += [f"WARNING: {finding}" for finding in audit.findings]
    if not audit.findings:
        lines.append("no finding: no class's accuracy differs by 20 points or more between formats or sizes with an "
                     "exact-test p below 0.01")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from bench import api

    started = time.perf_counter()
    suites = args.suite or (None if args.run_dirs else "demo")
    audits = [] if suites is None else api.audit(suites, args.data_root, workers=args.workers,
                                                 progress=not args.quiet, quiet=args.json)
    runs = api.audit_runs(args.run_dirs, workers=args.workers, progress=not args.quiet) if args.run_dirs else []
    if args.output:
        written = api.write_audit(audits, args.output)
        if not args.json:
            print(f"audit written to {written}")
    if args.json:
        suites_json = [a.to_dict() for a in audits]
        # without --run the output is the list of suite audits, as before
        print(json.dumps(api.json_safe({"suites": suites_json, "runs": [r.to_dict() for r in runs]} if args.run_dirs
                                       else suites_json), indent=1))
        return EXIT_OK
    print("\n\n".join([*(render(a) for a in audits), *(render_run(r) for r in runs)]))
    files = sum(g.real.n + g.fake.n for a in audits for g in a.generators)
    print(f"\ndone: {files:,} files of {len(audits)} suite(s) and {len(runs)} run(s) audited in "
          f"{time.perf_counter() - started:.1f} s" + (f"; written to {args.output}" if args.output else ""))
    return EXIT_OK
