"""Scoring a subset of an already scored folder from another path (issue 22, item 7).

    python -m benchmarks.subset_reuse [--n 60] [--detector lfm] [--weights demo]

Writes a folder suite (2 generators x N real + N fake 128x128 PNGs), scores it once with `bench run` (the
cache is warm), copies half of each class into a folder of another name and layout (`0_real/` + `1_fake/
<generator>/`, so suite, generator and relative paths all differ; the bytes are the same), and times
`bench run` on that copy twice, on copies of the warm cache: with `--fresh` (every image scored again,
what happened before the per-image index) and without (the per-image index reuses the scores of the same
bytes). Prints both times, their ratio, and whether the logits agree.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def write_suite(root: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    for generator in ("gen-a", "gen-b"):
        for label in ("0_real", "1_fake"):
            folder = root / generator / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
                if label == "1_fake":
                    pixels = pixels[::2, ::2].repeat(2, 0).repeat(2, 1)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")


def copy_subset(source: Path, target: Path) -> int:
    """Half of each class of each generator, into `target/0_real/` (reals, renamed) and `target/1_fake/<gen>/`."""
    copied = 0
    for generator in ("gen-a", "gen-b"):
        for label in ("0_real", "1_fake"):
            files = sorted((source / generator / label).iterdir())
            folder = target / "0_real" if label == "0_real" else target / "1_fake" / f"my-{generator}"
            folder.mkdir(parents=True, exist_ok=True)
            for path in files[: len(files) // 2]:
                shutil.copyfile(path, folder / f"{generator}-{path.name}")
                copied += 1
    return copied


def bench_run(suite: Path, results: Path, detector: str, weights: str, *extra: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench", "run", "-q", "--detector", detector, "--weights", weights,
                    "--suite", str(suite), "--output", str(results), "--workers", "0", "--json", *extra],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def latest_scores(results: Path) -> pd.DataFrame:
    folder = sorted((results / "runs").iterdir(), key=lambda p: p.stat().st_mtime)[-1]
    return pd.read_parquet(folder / "scores.parquet").sort_values(["generator", "path"]).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60, help="real and fake images per generator")
    parser.add_argument("--detector", default="lfm")
    parser.add_argument("--weights", default="demo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_suite(tmp / "scored", args.n)
        warm = tmp / "warm"
        first = bench_run(tmp / "scored", warm, args.detector, args.weights)
        copied = copy_subset(tmp / "scored", tmp / "elsewhere" / "subset")
        for name in ("baseline", "reuse"):
            shutil.copytree(warm, tmp / name)
        baseline = bench_run(tmp / "elsewhere" / "subset", tmp / "baseline", args.detector, args.weights, "--fresh")
        reuse = bench_run(tmp / "elsewhere" / "subset", tmp / "reuse", args.detector, args.weights)
        a, b = latest_scores(tmp / "baseline"), latest_scores(tmp / "reuse")
        gap = float(np.abs(a["logit"].to_numpy() - b["logit"].to_numpy()).max())
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.detector} ({args.weights})")
    print(f"first scoring of {4 * args.n} images: {first:.1f} s (includes model load)")
    print(f"subset of {copied} of them under another path, suite, generator and file names:")
    print(f"  scored again (--fresh, the behaviour before the per-image index): {baseline:.1f} s")
    print(f"  reused by content:                                             {reuse:.1f} s")
    print(f"  ratio: {baseline / reuse:.2f}x; largest |logit difference|: {gap:.2e}")


if __name__ == "__main__":
    main()
