"""`bench run` under torchrun with N processes: wall time and images/s for each N, on one folder.

    python -m benchmarks.sharded_eval [--nproc 1,2] [--images 256] [--detector lfm] [--batch-size 16]

Writes a folder of PNGs (half `0_real`, half `1_fake`, 256x256), then runs
`python -m torch.distributed.run --standalone --nproc_per_node N -m bench run --fresh ...` on it for each
N, as a child process timed from start to exit (process start, model loading and the results store
included, as a user would time it). Each process gets OMP_NUM_THREADS=max(1, cores // N), so every N
uses the machine's cores; the scores of every N are compared with N=1's (they must be identical).
This prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import describe_machine, ratio_table, write_images


def run_once(folder: Path, output: Path, nproc: int, detector: str, batch_size: int, workers: int) -> float:
    threads = max(1, (os.cpu_count() or 1) // nproc)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
               "-m", "bench", "run", "-q", "--detector", detector, "--suite", str(folder), "--weights", "demo",
               "--batch-size", str(batch_size), "--workers", str(workers), "--output", str(output), "--fresh",
               "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"N={nproc} failed:\n{done.stderr[-3000:]}")
    return seconds


def scores_of(output: Path) -> pd.DataFrame:
    newest = sorted(glob.glob(str(output / "runs" / "*" / "scores.parquet")))[-1]
    return pd.read_parquet(newest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nproc", default="1,2", help="process counts to compare (default 1,2)")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--detector", default="lfm")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0, help="decoding workers per process (default 0)")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.nproc.split(",")]

    print(describe_machine(), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "suite"
        write_images(folder, args.images, lambda rng: (256, 256))
        rows, reference = [], None
        for nproc in counts:
            output = Path(scratch) / f"results-{nproc}"
            seconds = run_once(folder, output, nproc, args.detector, args.batch_size, args.workers)
            scores = scores_of(output)
            if reference is None:
                reference = scores
            same = (scores["logit"].to_numpy() == reference["logit"].to_numpy()).all()
            largest = float((scores["logit"] - reference["logit"]).abs().max())
            threads = max(1, (os.cpu_count() or 1) // nproc)
            print(f"N={nproc} ({threads} thread(s) each): {seconds:.1f}s, {args.images / seconds:.1f} img/s; "
                  f"scores {'identical to' if same else f'differ by up to {largest:.1e} from'} N={counts[0]}'s",
                  flush=True)
            rows.append((f"N={nproc}", args.images / seconds))
        print()
        print(ratio_table(rows, "img/s", f"N={counts[0]}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
