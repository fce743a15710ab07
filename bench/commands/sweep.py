"""Robustness sweep: score detectors on suites under every level of one or more perturbations (plus the
clean images), reusing cached levels, then write a robustness table (Markdown and LaTeX) and plots (PNG
and PDF) into a sweep folder under `<results>/sweeps/`.

`--perturb` is repeatable: a grid over one parameter (`jpeg:q=100,90,80`, `blur:sigma=0,1,2`,
`resize:scale=0.5,0.75,back=1`), a family name alone for the field's default grid (`jpeg`: quality
100..30 step 10 and `blur`: sigma 0..4 as UnivFD's validate.py; `resize`: 0.5, 0.75, 1.5; `noise`: std 5,
10, 20), or one level (`gray`, `chain:social`, `reencode:jpeg:q=95`). Without `--perturb`: the four default
grids. Each level is an ordinary cached run, so a killed sweep, started again, resumes where it stopped.
Perturbations and their parameters: bench/engine/perturb.py.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.commands.run import add_evaluation_arguments

    # the sweep reports each level at the 0.5 threshold (a calibrated threshold is `bench run`'s option)
    add_evaluation_arguments(parser, "sweep")
    parser.add_argument("--perturb", action="append", dest="grids", metavar="SPEC",
                        help="repeatable: a grid (jpeg:q=100,70,40), a family (jpeg) or one level (gray)")
    parser.add_argument("--json", action="store_true", help="print sweep.json and the files written, as JSON")


def run(args: argparse.Namespace) -> int:
    from bench import api
    from bench.commands.run import config_from_args

    grids = [api.parse_sweep(spec) for spec in (args.grids or api.DEFAULT_GRIDS)]  # bad specs fail before any work
    config = config_from_args(args)
    selection = api.select_suites(args.suite, config.data_root, config.weights)
    if selection.note:
        print(selection.note, file=sys.stderr if args.json else sys.stdout, flush=True)
    # the sweep has its own bar over levels x generators; each level's scoring bar clears itself (leave=False)
    result, folder = api.run_sweep(args.detector, selection, grids, config=config)
    files = {name: str(folder / name) for name in
             ("sweep.json", "robustness.md", "robustness.tex", "robustness.png", "robustness.pdf")}
    if args.json:
        print(json.dumps(api.json_safe({**result.to_dict(), "folder": str(folder), "files": files}), indent=1))
        if not getattr(args, "quiet", False):
            print(result.summary(folder), file=sys.stderr)
        return 0
    print(api.render_tables(result, "markdown", " + ".join(result.suites)))
    print("AP change vs clean (points):")
    for detector, spec, delta in api.ap_changes(result):
        print(f"  {detector:<16} {spec:<40} {'-' if delta is None else f'{delta:+.1f}'}")
    print(f"\nsweep folder: {folder}")
    for path in files.values():
        print(f"  {path}")
    print(result.summary(folder))
    return 0
