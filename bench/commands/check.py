"""Compare fresh or stored results against committed baselines (CI regression checks).

Exit 0 when every metric is within tolerance, 1 when something moved (with a table of what), 2 when a
baseline cannot be evaluated (missing data or weights: the message says which). `--update` rewrites the
baselines on purpose and prints what changed.
"""

from __future__ import annotations

import argparse
import time

from bench.errors import EXIT_CHECK_FAILED, EXIT_USAGE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", action="append", metavar="FILE",
                        help="a baseline file or a folder of them (repeatable); default: results/baselines/*.json "
                        "(the fast sampled baselines; the full-suite ones are in results/baselines/full)")
    parser.add_argument("--tolerance", type=float, help="override every baseline's tolerance, in points")
    parser.add_argument("--update", action="store_true", help="rewrite the baselines with what is computed now")
    parser.add_argument("--data-root", help="default: $BENCH_DATA or ./datasets")
    parser.add_argument("--output", help="results root (default: $BENCH_RESULTS or ./results)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--fresh", action="store_true", help="recompute instead of reusing stored scores")


def run(args: argparse.Namespace) -> int:
    from bench import api

    def print_outcome(outcome, baseline) -> None:
        weights = baseline["weights"].get("name") or baseline["weights"].get("path")
        label = f"{outcome.baseline.name}: {baseline['detector']} / {weights}"
        if outcome.status == "ok":
            print(f"ok        {label} ({outcome.compared} values within tolerance)")
        elif outcome.status == "regression":
            print(f"MOVED     {label}: {len(outcome.differences)} of {outcome.compared} values out of tolerance")
            print(api.render_differences(outcome))
        elif outcome.status == "weights-changed":
            print(f"WEIGHTS   {label}: {outcome.message}")
        else:
            print(f"{outcome.status.upper():<9} {label}: {outcome.message}")
        if outcome.updated:
            print(f"updated   {outcome.baseline}" + ("" if outcome.status == "ok" else " (the values above are now expected)"))

    started = time.perf_counter()
    outcomes = api.check(args.baseline, tolerance=args.tolerance, update=args.update, data_root=args.data_root,
                         output=args.output, device=args.device, workers=args.workers, fresh=args.fresh,
                         on_outcome=print_outcome, progress=not getattr(args, "quiet", False))
    if any(o.status == "error" for o in outcomes):
        return EXIT_USAGE
    if not args.update and any(o.status in ("regression", "weights-changed") for o in outcomes):
        return EXIT_CHECK_FAILED
    skipped = sum(o.status == "skipped" for o in outcomes)
    print(f"{len(outcomes) - skipped} baseline(s) checked" + (f", {skipped} skipped" if skipped else "")
          + f" in {time.perf_counter() - started:.1f} s" + ("; baselines updated in place" if args.update else ""))
    return 0
