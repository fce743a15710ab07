"""What perturbing costs: decode throughput with and without each perturbation, and `bench sweep` against
plain `bench run`.

    python -m benchmarks.perturb_throughput [--images 128] [--workers 2] [--batch-size 32]

1. Decode only (one process, no model): every image of a folder of generated PNGs (mixed sizes, 200..400
   px per side, as benchmarks/end_to_end.py) is decoded by `DecodeSpec(resize=256).decode` as `bench run`
   does, clean and under each perturbation; images/s, and the perturbation's extra time as a fraction of
   the clean decode ("perturbing must not cost more than decoding": a fraction at most 1). Variants are
   timed in turns, median of `--rounds`.
2. End to end: `bench.api.evaluate` (what `bench run` calls) on the same folder with LFM's bundled demo
   weights, `--fresh`, clean; then `bench.analyses.sweep.run_sweep` over clean + jpeg:q=100,70,40 (four levels,
   fresh cache); images/s of each and the ratio (sweep images/s per level over plain run images/s).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import describe_machine, median, write_images

PERTURBATIONS = ["jpeg:q=75", "jpeg-cv2:q=75", "webp:q=80", "blur:sigma=2", "resize:scale=0.5",
                 "crop:keep=0.8", "noise:std=10", "gray", "chain:social", "chain:repost"]


def decode_rates(files: list[tuple[Path, str]], rounds: int) -> list[list]:
    from bench.engine.decode import DecodeSpec
    from bench.engine.perturb import parse

    specs = {"clean": DecodeSpec(resize=256)}
    specs.update({spec: DecodeSpec(resize=256, perturbation=parse(spec)) for spec in PERTURBATIONS})
    times: dict[str, list[float]] = {name: [] for name in specs}
    for _ in range(rounds):
        for name, spec in specs.items():  # in turns, so that load changes hit every variant alike
            started = time.perf_counter()
            for path, key in files:
                spec.decode(path, key)
            times[name].append(time.perf_counter() - started)
    clean = median(times["clean"])
    rows = []
    for name in specs:
        seconds = median(times[name])
        extra = (seconds - clean) / clean
        rows.append([name, f"{len(files) / seconds:.1f}", f"{1000 * seconds / len(files):.2f}",
                     "-" if name == "clean" else f"{extra:+.2f}"])
    return rows


def end_to_end(folder: Path, work: Path, batch_size: int, workers: int) -> list[list]:
    from bench import api
    from bench.analyses.sweep import run_sweep
    from bench.engine.config import EvalConfig
    from bench.engine.perturb import parse_sweep

    n_images = sum(1 for _ in folder.glob("*/*/*.png"))
    config = EvalConfig(weights="demo", output=str(work / "plain"), device="cpu", batch_size=batch_size,
                        workers=workers, fresh=True, progress=False)
    started = time.perf_counter()
    api.evaluate("lfm", str(folder), config=config)
    plain = time.perf_counter() - started
    config = EvalConfig(weights="demo", output=str(work / "sweep"), device="cpu", batch_size=batch_size,
                        workers=workers, progress=False)
    started = time.perf_counter()
    run_sweep("lfm", str(folder), [parse_sweep("jpeg:q=100,70,40")], config=config, progress=False)
    sweep = time.perf_counter() - started
    per_level = sweep / 4
    return [
        ["bench run (clean, fresh)", f"{n_images / plain:.1f}", f"{plain:.1f}", "1.00"],
        ["bench sweep, 4 levels (clean + jpeg 100/70/40), per level", f"{n_images / per_level:.1f}",
         f"{sweep:.1f} (all 4)", f"{plain / per_level:.2f}"],
    ]


def main() -> None:
    from bench.outputs.textable import format_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print(describe_machine())
    work = Path(tempfile.mkdtemp(prefix="perturb-bench-"))
    try:
        folder = work / "suite" / "gen"
        write_images(folder, args.images, lambda rng: tuple(int(v) for v in rng.integers(200, 401, 2)))
        files = [(p, p.relative_to(work / "suite").as_posix()) for p in sorted(folder.glob("*/*.png"))]
        print(f"\n1. decode only, {len(files)} PNGs of 200..400 px per side -> 256x256, median of {args.rounds} rounds")
        print(format_table(["perturbation", "img/s", "ms/img", "extra time / clean decode"],
                           decode_rates(files, args.rounds), [False, True, True, True]))
        print(f"\n2. end to end, LFM (demo weights), CPU, batch {args.batch_size}, {args.workers} workers")
        print(format_table(["what", "img/s", "seconds", "ratio (run / sweep level time)"],
                           end_to_end(work / "suite", work, args.batch_size, args.workers),
                           [False, True, True, True]))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
