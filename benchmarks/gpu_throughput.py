"""LFM throughput on one accelerator: the official forward against the `bench run` path, fp32 / bf16 / compile.

    python -m benchmarks.gpu_throughput                        # CUDA: batch 32, 128, 512 at 256x256
    python -m benchmarks.gpu_throughput --device cpu --small   # CPU: batch 2 and 4 at 128x128 (a smoke run)

Variants, all on the same weights and the same uint8 images already on the device (model throughput:
decoding and the host-to-device copy are apart, except in the last variant):
- official fp32: benchmarks/baselines.py's port of the official forward (BatchNorm unfused, the residual
  by 2x2 convolutions, Top-K twice), on float input normalised beforehand (untimed: in its favour);
- official bf16: the same under bf16 autocast;
- bench fp32: `bench.engine.inference.prepare_scorer` (BN folded, sliced residual, channels-last, normalisation
  on the device, timed) as `bench run` uses it;
- bench bf16: the same under `bench.engine.inference.autocast_context(device, "bf16")` (`bench run --amp bf16`);
  on CPU, where `bench run` never autocasts, under `torch.autocast("cpu", bfloat16)`;
- bench channels-last + compile (fp32 and bf16): `prepare_scorer(..., compile=True)`; compilation is the
  first call, reported apart and not timed;
- bench bf16 + copy: bench bf16 on uint8 batches copied from pinned host memory each call
  (`non_blocking=True`, as `bench run`'s DataLoader with `pin_memory=True` delivers them).

Timing: CUDA events around each call (the GPU's own clock; `torch.cuda.synchronize` before reading), or
`time.perf_counter` on CPU. Variants are timed in turns, one call each per round, and the figure is the
median over rounds. Logits of every variant are compared with official fp32 first and the largest
difference printed (bf16 moves logits by ~1e-2 of their range; fp32 on CUDA may use TF32 convolutions).

The LFM paper reports 1789 img/s on an RTX A6000 (its efficiency table); the figures below are printed with
their ratio to that number. This prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch

from bench.analyses.profile import cpu_model
from bench.engine.inference import autocast_context, prepare_scorer
from benchmarks.baselines import official_lfm
from benchmarks.common import describe_machine, lfm_state_dict, median, ratio_table
from detectors import get_detector
from detectors.checkpoints import load_state_dict_strict

PAPER_IMG_S = 1789.0
"""LFM paper, efficiency comparison: images/s of LFM on one NVIDIA RTX A6000."""

OFFICIAL = "official fp32"


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return (f"device: {torch.cuda.get_device_name(device)} (compute capability {props.major}.{props.minor}, "
                f"{props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs); CUDA "
                f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; torch {torch.__version__}")
    return f"device: CPU {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def bf16_context(device: torch.device):
    if device.type == "cuda":
        return autocast_context(device, "bf16")  # exactly what `bench run --amp bf16` enters
    return torch.autocast("cpu", dtype=torch.bfloat16)


class Variant:
    """A callable on the device's uint8 batch, optionally in bf16 autocast, optionally copying first."""

    def __init__(self, call: Callable, device: torch.device, bf16: bool = False, takes: str = "uint8") -> None:
        self.call, self.device, self.bf16, self.takes = call, device, bf16, takes

    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode(), (bf16_context(self.device) if self.bf16 else nullcontext()):
            if self.takes == "pinned":
                return self.call(batch["pinned"].to(self.device, non_blocking=True))
            return self.call(batch[self.takes])


def build_variants(device: torch.device, compile: bool) -> tuple[dict[str, Variant], str]:
    state_dict, weights = lfm_state_dict()
    detector = get_detector("lfm")
    model = detector.build()
    load_state_dict_strict(model, state_dict, detector, "benchmark weights")
    official = official_lfm(state_dict).to(device)
    bench_scorer = prepare_scorer(model, detector.preprocessing, device)
    variants = {
        OFFICIAL: Variant(lambda x: official(x).reshape(-1), device, takes="float"),
        "official bf16": Variant(lambda x: official(x).reshape(-1), device, bf16=True, takes="float"),
        "bench fp32": Variant(bench_scorer, device),
        "bench bf16": Variant(bench_scorer, device, bf16=True),
    }
    if compile:
        compiled = prepare_scorer(model, detector.preprocessing, device, compile=True)
        variants["bench channels-last + compile fp32"] = Variant(compiled, device)
        variants["bench channels-last + compile bf16"] = Variant(compiled, device, bf16=True)
    variants["bench bf16 + pinned copy"] = Variant(bench_scorer, device, bf16=True, takes="pinned")
    return variants, weights


def make_batch(device: torch.device, batch_size: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=generator)
    preprocessing = get_detector("lfm").preprocessing
    pinned = pixels.pin_memory() if device.type == "cuda" else pixels
    return {"uint8": pixels.to(device), "float": preprocessing.normalize(pixels.to(device)), "pinned": pinned}


def _timer(device: torch.device):
    if device.type == "cuda":
        def timed(call, batch) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call(batch)
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end) / 1000.0
    else:
        def timed(call, batch) -> float:
            t0 = time.perf_counter()
            call(batch)
            return time.perf_counter() - t0
    return timed


def agreement(variants: dict[str, Variant], device: torch.device, size: int) -> dict[str, float]:
    batch = make_batch(device, 4, size, seed=1)
    reference = variants[OFFICIAL](batch).float()
    return {name: float((v(batch).float() - reference).abs().max()) for name, v in variants.items() if name != OFFICIAL}


def measure(variants: dict[str, Variant], device: torch.device, batch_size: int, size: int, budget_s: float,
            min_rounds: int) -> dict[str, dict]:
    batch = make_batch(device, batch_size, size)
    timed = _timer(device)
    first_call = {}
    for name, call in variants.items():  # warm-up: cuDNN autotuning, compilation
        t0 = time.perf_counter()
        call(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        first_call[name] = time.perf_counter() - t0
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    started, rounds = time.perf_counter(), 0
    while rounds < min_rounds or (time.perf_counter() - started < budget_s and rounds < 50):
        for name, call in variants.items():
            seconds[name].append(timed(call, batch))
        rounds += 1
    out = {name: {"img_s": batch_size / median(times), "rounds": len(times), "first_call_s": first_call[name]}
           for name, times in seconds.items()}
    if device.type == "cuda":
        out["_peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cuda[:N] or cpu")
    parser.add_argument("--batch-sizes", help="default 32,128,512 (--small: 2,4)")
    parser.add_argument("--size", type=int, help="square input side (default 256, the protocol's; --small 128)")
    parser.add_argument("--budget", type=float, help="seconds of timed rounds per batch size (default 20; --small 3)")
    parser.add_argument("--small", action="store_true", help="a quick setting that runs on a CPU in a few minutes")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variants")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    batch_sizes = [int(b) for b in (args.batch_sizes or ("2,4" if args.small else "32,128,512")).split(",")]
    budget = args.budget if args.budget is not None else (3.0 if args.small else 20.0)
    args.size = args.size or (128 if args.small else 256)
    min_rounds = 2 if args.small else 5
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels

    print(describe_machine(), flush=True)
    print(describe_device(device), flush=True)
    variants, weights = build_variants(device, compile=not args.no_compile)
    print(f"weights: {weights}; input {args.size}x{args.size}", flush=True)
    for name, diff in agreement(variants, device, args.size).items():
        print(f"  max |logit - official fp32|: {name}: {diff:.2e}", flush=True)
    print(flush=True)

    results = {}
    for batch_size in batch_sizes:
        figures = measure(variants, device, batch_size, args.size, budget, min_rounds)
        results[batch_size] = figures
        rows = [(name, f["img_s"]) for name, f in figures.items() if not name.startswith("_")]
        print(f"batch {batch_size} (median of {figures[OFFICIAL]['rounds']} rounds"
              + (f", peak memory {figures['_peak_memory_gib']:.1f} GiB" if "_peak_memory_gib" in figures else "")
              + "):")
        print(ratio_table(rows, "img/s", OFFICIAL))
        compiled = [n for n in figures if "compile" in n]
        if compiled:
            print("(compile: first call " + ", ".join(f"{figures[n]['first_call_s']:.1f}s" for n in compiled)
                  + ", not timed)")
        if args.size == 256 and device.type == "cuda":
            best = max(rows, key=lambda r: r[1])
            print(f"best: {best[0]} {best[1]:.0f} img/s = {best[1] / PAPER_IMG_S:.2f}x the paper's "
                  f"{PAPER_IMG_S:.0f} img/s (RTX A6000)")
        print(flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": describe_machine(), "device": describe_device(device), "weights": weights,
                       "size": args.size, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
