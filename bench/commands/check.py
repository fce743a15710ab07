"""Compare fresh or stored results against committed baselines (CI regression checks).

Exit 0 when every metric is within tolerance, 1 when something moved (with a table of what), 2 when a
baseline cannot be evaluated (missing data or weights: the message says which). `--update` rewrites the
baselines on purpose and prints what changed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.errors import EXIT_CHECK_FAILED, EXIT_USAGE, BenchError


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
    from bench.analyses.regression import (
        baseline_files,
        load_baseline,
        render_differences,
        run_baseline,
        updated_baseline,
    )
    from bench.engine.config import EvalConfig
    from bench.engine.store import ResultsStore, atomic_write_json
    from bench.engine.suites import default_data_root

    if args.tolerance is not None and args.tolerance < 0:
        raise BenchError("--tolerance must be >= 0 (points)")
    store = ResultsStore(args.output)
    data_root = Path(args.data_root) if args.data_root else default_data_root()
    options = EvalConfig(output=args.output, device=args.device, workers=args.workers, fresh=args.fresh,
                         write_run=False)
    outcomes = []
    for path in baseline_files(args.baseline, store.root):
        baseline = load_baseline(path)
        if args.tolerance is not None:
            baseline = {**baseline, "tolerance": args.tolerance, "metric_tolerances": {}}
        outcome = run_baseline(path, baseline, store, options, data_root, update=args.update)
        outcomes.append(outcome)
        label = f"{path.name}: {baseline['detector']} / {baseline['weights'].get('name') or baseline['weights'].get('path')}"
        if outcome.status == "ok":
            print(f"ok        {label} ({outcome.compared} values within tolerance)")
        elif outcome.status == "regression":
            print(f"MOVED     {label}: {len(outcome.differences)} of {outcome.compared} values out of tolerance")
            print(render_differences(outcome))
        elif outcome.status == "weights-changed":
            print(f"WEIGHTS   {label}: {outcome.message}")
        else:
            print(f"{outcome.status.upper():<9} {label}: {outcome.message}")
        if args.update and outcome.fresh is not None:
            original = load_baseline(path)
            new = updated_baseline(original, outcome)
            if new != original:
                atomic_write_json(path, new)
                print(f"updated   {path}" + ("" if outcome.status == "ok" else " (the values above are now expected)"))
    if any(o.status == "error" for o in outcomes):
        return EXIT_USAGE
    if not args.update and any(o.status in ("regression", "weights-changed") for o in outcomes):
        return EXIT_CHECK_FAILED
    skipped = sum(o.status == "skipped" for o in outcomes)
    print(f"{len(outcomes) - skipped} baseline(s) checked" + (f", {skipped} skipped" if skipped else ""))
    return 0

