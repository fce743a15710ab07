"""End-to-end `bench run` vs the plain ImageFolder pipeline, and `bench run`'s memory at 1k vs 10k images.

    python -m benchmarks.end_to_end [--images 256] [--batch-size 32] [--workers 2] [--rss-images 1000,10000]

1. Two folders of generated PNGs (`0_real`/`1_fake`): one of 256x256 images, one of mixed sizes
   (200..400 px per side, odd sizes included). Each is scored by the real `bench run` (in this process,
   through `bench.cli.main`, `--suite PATH`, which applies the paper's Resize((256, 256)) protocol) and by
   benchmarks/baselines.py's plain pipeline (torchvision ImageFolder + DataLoader + the plain port of the
   official forward), with the same weights, batch size and worker count. Wall time covers everything
   from the call to the scores (model loading and, for `bench run`, writing the results store) and gives
   images/s; the logits of every file must agree within 1e-4.
2. `bench run` in a child process on 1k and on 10k 64x64 PNGs (a folder named `GANGen-Detection`, so that
   the paper's native-size protocol applies: small images keep the run to about a minute on 2 cores),
   reading the peak RSS of each child's main process (Linux VmHWM). Scores stream to the store in parts, so the peak must
   not grow with the number of images.

Weights: the official LFM checkpoint where ../shared has it, else a random init (speed does not depend on
the values). Everything is written under a temporary folder, removed at the end unless `--keep`.
This prints figures; it asserts nothing except that the scores agree.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from bench.cli import main as bench_main
from benchmarks.baselines import imagefolder_scores, official_lfm
from benchmarks.common import describe_machine, lfm_state_dict, ratio_table, write_images

SCORE_TOLERANCE = 1e-4
PLAIN = "ImageFolder + plain port"
BENCH = "bench run"


def bench_run_args(suite: Path, weights: Path, output: Path, batch_size: int, workers: int) -> list[str]:
    return ["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(weights), "--output", str(output),
            "--device", "cpu", "--batch-size", str(batch_size), "--workers", str(workers), "--fresh", "--json"]


def stored_scores(output: Path) -> dict[str, float]:
    (run_folder,) = sorted((output / "runs").iterdir())
    frame = pd.read_parquet(run_folder / "scores.parquet")
    return dict(zip(frame["path"], frame["logit"], strict=True))


def compare_pipelines(folder: Path, weights: Path, work: Path, batch_size: int, workers: int) -> dict:
    """Wall time of both pipelines on ``folder`` and the largest logit difference between them."""
    n_images = sum(1 for _ in folder.glob("*/*.png"))
    state_dict = torch.load(weights, map_location="cpu", weights_only=True)

    t0 = time.perf_counter()
    plain_scores = imagefolder_scores(folder, official_lfm(state_dict), batch_size, workers)
    plain_s = time.perf_counter() - t0

    output = work / f"results-{folder.name}"
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the metrics JSON; the scores are read from the store
        code = bench_main(bench_run_args(folder, weights, output, batch_size, workers))
    bench_s = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"bench run failed on {folder} (exit {code})")
    bench_scores = stored_scores(output)

    if set(bench_scores) != set(plain_scores):
        raise SystemExit(f"{folder}: the pipelines scored different files")
    worst = max(abs(bench_scores[p] - plain_scores[p]) for p in plain_scores)
    if worst > SCORE_TOLERANCE:
        raise SystemExit(f"{folder}: logits differ by up to {worst:.2e} (more than {SCORE_TOLERANCE})")
    return {"images": n_images, PLAIN: n_images / plain_s, BENCH: n_images / bench_s, "max_abs_logit_diff": worst}


# Runs `bench` in the child and reports the child's own high-water mark on its last stderr line. Linux's
# VmHWM belongs to the process image after exec; ru_maxrss would not do: exec carries the parent's
# (this benchmark's, gigabytes after part 1) high-water mark over into the child's ru_maxrss.
PROBE = """
import sys
from bench.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    hwm = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
print("VmHWM_KiB", hwm, file=sys.stderr)
sys.exit(code)
"""


def peak_rss_of_bench_run(args: list[str], log: Path) -> tuple[float, float]:
    """(peak RSS in MiB of the main process, seconds) of `bench <args>` in a child process (Linux)."""
    with open(log, "w") as out:
        t0 = time.perf_counter()
        child = subprocess.run([sys.executable, "-c", PROBE, *args], stdout=out, stderr=subprocess.STDOUT, check=False)
        seconds = time.perf_counter() - t0
    text = log.read_text()
    if child.returncode != 0:
        raise SystemExit(f"bench {' '.join(args)} failed (exit {child.returncode}); see {log}:\n{text[-2000:]}")
    hwm_kib = int(text.rsplit("VmHWM_KiB", 1)[1].split()[0])
    return hwm_kib / 1024.0, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="images per folder in part 1 (default 256)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes of both pipelines")
    parser.add_argument("--rss-images", default="1000,10000", help="image counts of part 2 ('' skips it)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args(argv)

    print(describe_machine(), flush=True)
    work = Path(tempfile.mkdtemp(prefix="lfm-bench-e2e-"))
    try:
        state_dict, weights_note = lfm_state_dict()
        weights = work / "weights.pth"
        torch.save(state_dict, weights)
        print(f"weights: {weights_note}; batch {args.batch_size}, {args.workers} workers, CPU\n", flush=True)

        folders = {
            "256x256 PNGs": (work / "uniform256", lambda rng: (256, 256)),
            "mixed-size PNGs (200..400 px)": (work / "mixed", lambda rng: tuple(int(s) for s in rng.integers(200, 401, 2))),
        }
        summary = {}
        for label, (folder, sizes) in folders.items():
            write_images(folder, args.images, sizes, seed=len(label))
            figures = compare_pipelines(folder, weights, work, args.batch_size, args.workers)
            summary[label] = figures
            print(f"{label}: {figures['images']} images, logits agree within {figures['max_abs_logit_diff']:.1e}")
            print(ratio_table([(PLAIN, figures[PLAIN]), (BENCH, figures[BENCH])], "img/s", PLAIN) + "\n", flush=True)
        mixed = summary["mixed-size PNGs (200..400 px)"]
        ratio = mixed[BENCH] / mixed[PLAIN]
        print(f"target bench run >= 2x the plain pipeline on mixed sizes: {ratio:.2f}x  "
              f"{'met' if ratio >= 2 else 'NOT met'}\n", flush=True)

        counts = sorted(int(c) for c in args.rss_images.split(",") if c.strip())
        if counts:
            suite = work / "rss" / "GANGen-Detection"  # the folder name selects the native-size protocol
            generator = suite / "AttGAN"
            write_images(generator, counts[-1], lambda rng: (64, 64), seed=1)
            rows = []
            for count in counts:
                run_args = bench_run_args(suite, weights, work / f"results-rss-{count}", args.batch_size, args.workers)
                run_args += ["--limit", str(count // 2)]  # N real + N fake of the largest folder
                peak_mb, seconds = peak_rss_of_bench_run(run_args, work / f"rss-{count}.log")
                rows.append((count, peak_mb, count / seconds))
                print(f"bench run on {count} 64x64 PNGs: peak RSS {peak_mb:.0f} MiB, {count / seconds:.0f} img/s "
                      f"(child process, start-up included)", flush=True)
            (small, small_mb, _), (large, large_mb, _) = rows[0], rows[-1]
            print(f"peak RSS at {large} vs {small} images: {large_mb / small_mb:.2f}x "
                  f"({large_mb - small_mb:+.0f} MiB)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
