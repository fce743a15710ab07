"""LFM model throughput: the plain port of the official forward vs the fast path of `bench run`.

    python -m benchmarks.model_throughput [--batch-sizes 1,32,256] [--budget 30] [--no-compile] [--json FILE]

Variants, all with the same weights (logits checked to agree within 1e-4 before timing):
- plain port: benchmarks/baselines.py's OfficialLFM (residual by 2x2 convolutions, BatchNorm unfused,
  Top-K twice) on float images normalised beforehand (normalisation not timed: in its favour);
- fast: `bench.engine.inference.prepare_scorer` as `bench run` uses it (BN folded, sliced residual,
  channels-last, on CPU the batch scored two images at a time) on uint8 images, normalisation timed;
- fast + compile: the same with `torch.compile` (first call's compilation reported apart, not timed);
- fast, whole batch: the fast path without the CPU micro-batching, to show what it buys: a batch's
  first-layer activations (17 MB per 256x256 image) overflow the caches and the convolutions become
  memory-bound; two images at a time stay near the batch-1 speed.

Variants are timed in turns, one call each per round, so that other work on the machine slows them
alike; the figure is the median over rounds. This prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from bench.engine.inference import prepare_scorer
from benchmarks.baselines import official_lfm
from benchmarks.common import describe_machine, lfm_state_dict, median, ratio_table
from detectors import get_detector
from detectors.checkpoints import load_state_dict_strict

PLAIN = "plain port"
FAST = "fast (bench run)"
COMPILED = "fast + compile"
WHOLE = "fast, whole batch"


def build_variants(compile: bool) -> tuple[dict[str, Callable], Callable[[torch.Tensor], torch.Tensor], str]:
    """name -> callable(uint8 or float batch); the normalisation the plain port's input gets; weights."""
    state_dict, weights = lfm_state_dict()
    detector = get_detector("lfm")
    model = detector.build()
    load_state_dict_strict(model, state_dict, detector, "benchmark weights")
    plain = official_lfm(state_dict)
    fast = prepare_scorer(model, detector.preprocessing, "cpu")
    mean = torch.tensor(detector.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(detector.preprocessing.std).view(1, 3, 1, 1)

    def normalise(pixels: torch.Tensor) -> torch.Tensor:  # ToTensor + Normalize, as the official pipeline
        return (pixels.float() / 255.0 - mean) / std

    whole = prepare_scorer(model, detector.preprocessing, "cpu")
    whole.micro_batch = None
    variants: dict[str, Callable] = {PLAIN: lambda x: plain(x).reshape(-1), FAST: fast, WHOLE: whole}
    if compile:
        variants[COMPILED] = prepare_scorer(model, detector.preprocessing, "cpu", compile=True)
    return variants, normalise, weights


def check_agreement(variants: dict[str, Callable], normalise) -> float:
    pixels = torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8)
    with torch.inference_mode():
        reference = variants[PLAIN](normalise(pixels))
        worst = max(float((v(pixels) - reference).abs().max()) for n, v in variants.items() if n != PLAIN)
    if worst > 1e-4:
        raise SystemExit(f"the variants disagree with the plain port by {worst:.2e} (more than 1e-4)")
    return worst


def measure(variants: dict[str, Callable], normalise, batch_size: int, budget_s: float) -> dict[str, dict]:
    """Images per second of each variant at ``batch_size``, timed in turns."""
    pixels = torch.randint(0, 256, (batch_size, 3, 256, 256), dtype=torch.uint8)
    floats = normalise(pixels)
    inputs = {name: floats if name == PLAIN else pixels for name in variants}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    first_call: dict[str, float] = {}
    with torch.inference_mode():
        for name, call in variants.items():  # warm-up (and compilation)
            t0 = time.perf_counter()
            call(inputs[name])
            first_call[name] = time.perf_counter() - t0
        started = time.perf_counter()
        rounds = 0
        while rounds < 2 or (time.perf_counter() - started < budget_s and rounds < 20):
            for name, call in variants.items():
                t0 = time.perf_counter()
                call(inputs[name])
                seconds[name].append(time.perf_counter() - t0)
            rounds += 1
    return {
        name: {
            "img_s": batch_size / median(times),
            "img_s_range": [batch_size / max(times), batch_size / min(times)],
            "rounds": len(times),
            "first_call_s": first_call[name],
        }
        for name, times in seconds.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of timed rounds per batch size")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    print(describe_machine(), flush=True)
    variants, normalise, weights = build_variants(compile=not args.no_compile)
    print(f"weights: {weights}; input 256x256; CPU, float32", flush=True)
    print(f"logits agree with the plain port within {check_agreement(variants, normalise):.1e}\n", flush=True)

    results = {}
    for batch_size in batch_sizes:
        figures = measure(variants, normalise, batch_size, args.budget)
        results[batch_size] = figures
        rows = [(name, f["img_s"]) for name, f in figures.items()]
        rounds = figures[PLAIN]["rounds"]
        print(f"batch {batch_size} (median of {rounds} rounds):")
        print(ratio_table(rows, "img/s", PLAIN))
        if COMPILED in figures:
            print(f"(compile: first call {figures[COMPILED]['first_call_s']:.1f}s, not timed)")
        print(flush=True)

    if 32 in results:
        at32 = results[32]
        fast_ratio = at32[FAST]["img_s"] / at32[PLAIN]["img_s"]
        print(f"target fast >= 2x plain at batch 32: {fast_ratio:.2f}x  {'met' if fast_ratio >= 2 else 'NOT met'}")
        if COMPILED in at32:
            compiled_ratio = at32[COMPILED]["img_s"] / at32[PLAIN]["img_s"]
            print(f"target compile >= 3x plain at batch 32: {compiled_ratio:.2f}x  "
                  f"{'met' if compiled_ratio >= 3 else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": describe_machine(), "weights": weights, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
