"""Compare two runs image by image: the paired difference in ACC, AP and AUC per generator with its
interval, McNemar's exact test (ACC), DeLong's test (AUC) and a paired-bootstrap test (AP), Holm-corrected
across the generators. Images are matched by suite and path; those only one run scored are named.

    bench compare results/runs/<run-a> results/runs/<run-b>
    bench compare lfm:demo lfm-gap:demo              # the latest runs of those weights in the results store
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.api import CI_METHODS

    parser.add_argument("run_a", metavar="RUN_A", help="a run folder, or a detector or weights name (e.g. lfm:demo) "
                        "whose latest unperturbed run in the results store is taken")
    parser.add_argument("run_b", metavar="RUN_B", help="the same, for the other side")
    parser.add_argument("--results", metavar="DIR", help="results root for names (default: $BENCH_RESULTS or results)")
    parser.add_argument("--suite", metavar="NAME", help="compare this suite only")
    parser.add_argument("--format", choices=("markdown", "latex"), default="markdown", help="default: markdown")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON only")
    parser.add_argument("--output", metavar="FILE", help="write the table there instead of stdout")
    parser.add_argument("--ci-level", type=float, default=0.95, help="interval level; 1 - level is the test's alpha "
                        "(default 0.95)")
    parser.add_argument("--ci-resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--ci-method", choices=CI_METHODS, default="percentile", help="default: percentile")
    parser.add_argument("--ci-seed", type=int, default=0, help="seed of the resampling (default 0)")


def run(args: argparse.Namespace) -> int:
    from bench import api

    options = api.UncertaintyOptions(args.ci_level, args.ci_resamples, args.ci_method, args.ci_seed)  # exit 2 first
    comparison = api.compare(args.run_a, args.run_b, results=args.results, suite=args.suite, options=options)
    if args.json:
        text = json.dumps(api.json_safe(comparison.to_dict()), indent=1) + "\n"
    else:
        text = api.COMPARE_FORMATS[args.format](comparison)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(args.output, file=sys.stderr if args.json else sys.stdout)
    else:
        sys.stdout.write(text)
    return 0
