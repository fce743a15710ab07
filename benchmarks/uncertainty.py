"""How long the confidence intervals take, beside a plain `bench table`, and how their memory is bounded.

A synthetic results store holds one run per paper test set (ForenSynths, GANGen-Detection,
DiffusionForensics, UniversalFakeDetect, Diffusion1kStep: 8 + 9 + 8 + 8 + 5 = 38 generators), each generator
`--images` images (half real), logits drawn per generator with its own separation. Timed, each the median
of `--repeats` calls:

- `bench table --suite all` (the comparison table over the 38 generators), reading metrics.json: the
  baseline;
- the intervals a run computes once when it is assembled (bench.engine.uncertainty.bootstrap_run over
  every generator's scores, `--resamples` resamples), on 1 and on 2 threads, and the metrics.json content
  without them (bench.engine.runner.metrics_for) for scale;
- `bench table --suite all --ci` with the intervals stored in metrics.json (only the mean over all 38
  generators, which spans five runs, is resampled then) and on runs written before intervals existed
  (every interval computed from scores.parquet).

Memory: the peak of numpy's allocations (tracemalloc) while the 38-generator intervals are computed, and
for one generator of `--big` images (default a million) with `--big-resamples` resamples, beside what one
dense images x resamples matrix of counts would take.

    python -m benchmarks.uncertainty                      # about a minute on 2 quiet cores
    python -m benchmarks.uncertainty --big 0              # without the million-image generator
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
import tracemalloc
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pandas as pd

from bench.cli import main as bench_main
from bench.engine.runner import metrics_for
from bench.engine.uncertainty import (
    CELL_BUDGET,
    UncertaintyOptions,
    attach_intervals,
    bootstrap_generator,
    bootstrap_run,
)
from bench.outputs import reported
from bench.outputs.textable import format_table

from .common import describe_machine, median


def suite_generators() -> dict[str, list[str]]:
    """The paper's columns of each test set (the comparison table's 38 generators)."""
    spec = reported.table_spec("comparison")
    return {column.suite: list(column.generators) for column in spec.columns}


def synthetic_scores(suite: str, generators: list[str], images: int, rng) -> pd.DataFrame:
    frames = []
    for generator in generators:
        labels = np.r_[np.zeros(images // 2, int), np.ones(images - images // 2, int)]
        logits = rng.normal(0, 2.0, images) + labels * rng.uniform(0.5, 6.0)
        frames.append(pd.DataFrame({
            "suite": suite, "generator": generator, "label": labels, "logit": logits,
            "path": [f"{generator}/{'1_fake' if y else '0_real'}/{i:06d}.png" for i, y in enumerate(labels)],
            "prob": 1 / (1 + np.exp(-logits))}))
    return pd.concat(frames, ignore_index=True)


def write_store(root: Path, generators: dict[str, list[str]], images: int, options: UncertaintyOptions | None,
                seed: int = 0) -> pd.DataFrame:
    """A results store with one lfm run per test set; metrics.json with intervals under `options` (None:
    without, as runs written before they existed). Returns every scores frame, concatenated."""
    rng = np.random.default_rng(seed)
    every = []
    for suite, names in generators.items():
        scores = synthetic_scores(suite, names, images, rng)
        metrics = metrics_for(scores, [suite], {suite: names}, prob_precision="float64")
        if options is not None:
            boot = bootstrap_run(scores, options, prob_precision="float64")
            attach_intervals(metrics, boot.blocks([suite], {suite: names}), options)
        folder = root / "runs" / f"20261201-000000-lfm-{suite}"
        folder.mkdir(parents=True)
        info = {"run_id": folder.name, "status": "finished", "detector": "lfm", "display_name": "LFM",
                "reported_method": "LFM", "weights": {"name": "lfm:official", "sha256": "ab" * 32, "path": "/w.pth"},
                "suites": [suite], "finished_at": "2026-12-01T00:00:00+00:00", "protocol_choice": "paper"}
        (folder / "run.json").write_text(json.dumps(info))
        (folder / "metrics.json").write_text(json.dumps(metrics, default=float).replace("NaN", "null"))
        scores.to_parquet(folder / "scores.parquet", index=False)
        every.append(scores)
    return pd.concat(every, ignore_index=True)


def timed(function, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds (all threads of the process) of `repeats` calls. On a shared
    machine the CPU time says what the work costs; the wall time what a user waits."""
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return median(walls), median(cpus)


def table(root: Path, *extra: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert bench_main(["table", "--suite", "all", "--results", str(root), "-q", *extra]) == 0


def peak_mb(function) -> float:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images per generator (default 2000)")
    parser.add_argument("--resamples", type=int, default=2000, help="default 2000")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (median; default 3)")
    parser.add_argument("--big", type=int, default=1_000_000, help="images of the one-generator memory check "
                        "(default 1,000,000; 0 skips it)")
    parser.add_argument("--big-resamples", type=int, default=100, help="its resamples (default 100)")
    args = parser.parse_args(argv)
    print(describe_machine())
    generators = suite_generators()
    n_generators = sum(len(g) for g in generators.values())
    options = UncertaintyOptions(resamples=args.resamples)
    print(f"synthetic run: {n_generators} generators x {args.images} images = {n_generators * args.images:,} "
          f"images; {args.resamples} resamples, 95% percentile; CELL_BUDGET {CELL_BUDGET:,} cells per array")
    rows = []
    with TemporaryDirectory() as stored_dir, TemporaryDirectory() as old_dir:
        stored, old = Path(stored_dir), Path(old_dir)
        scores = write_store(stored, generators, args.images, options)
        write_store(old, generators, args.images, None)
        baseline = timed(lambda: table(stored), args.repeats)
        rows.append(("bench table --suite all (baseline)", baseline))
        order = {s: list(g) for s, g in generators.items()}
        rows.append(("metrics.json without intervals (runner.metrics_for)",
                     timed(lambda: metrics_for(scores, list(generators), order, prob_precision="float64"), 1)))
        for workers in (1, 2):
            rows.append((f"intervals of the run, {workers} thread{'s' if workers > 1 else ''} (bootstrap_run)",
                         timed(lambda w=workers: bootstrap_run(scores, options, prob_precision="float64", workers=w),
                               args.repeats)))
        ci = ["--ci", "--ci-resamples", str(args.resamples)]
        rows.append(("bench table --suite all --ci, intervals stored", timed(lambda: table(stored, *ci), args.repeats)))
        rows.append(("bench table --suite all --ci, runs from before intervals",
                     timed(lambda: table(old, *ci), args.repeats)))
        peak = peak_mb(lambda: bootstrap_run(scores, options, prob_precision="float64", workers=1))
    body = [[name, f"{wall:.2f}", f"{cpu:.2f}", f"{wall / baseline[0]:.0f}x"] for name, (wall, cpu) in rows]
    print(format_table(["what", "wall s (median)", "CPU s", "wall vs bench table"], body, [False, True, True, True]))
    print(f"peak numpy memory while computing the run's intervals (1 thread): {peak:.0f} MB "
          f"(scores: {scores.memory_usage(deep=True).sum() / 2**20:.0f} MB)")
    if args.big:
        rng = np.random.default_rng(1)
        labels = np.r_[np.zeros(args.big // 2, int), np.ones(args.big - args.big // 2, int)]
        logits = rng.normal(0, 2.0, args.big) + 2.0 * labels
        big = UncertaintyOptions(resamples=max(100, args.big_resamples))
        seconds, cpu = timed(lambda: bootstrap_generator(labels, logits, big, "big/one", prob_precision="float64"), 1)
        peak = peak_mb(lambda: bootstrap_generator(labels, logits, big, "big/one", prob_precision="float64"))
        dense = args.big * big.resamples * 8 / 2**30
        print(f"one generator of {args.big:,} images, {big.resamples} resamples: {seconds:.1f} s wall, {cpu:.1f} s "
              f"CPU ({cpu / big.resamples * 2000 / 60:.1f} CPU min for 2,000), peak numpy memory {peak:.0f} MB; "
              f"a dense images x resamples float64 matrix would take {dense:.1f} GB "
              f"({args.big * 2000 * 8 / 2**30:.0f} GB for 2,000 resamples)")


if __name__ == "__main__":
    main()
