"""Profiling a detector: parameter and operation counts, latency, throughput and peak memory.

Counts are taken on the plain model (eval mode, batch 1, ``input_size`` x ``input_size``):
- ``macs``: multiply-accumulates counted the way ``thop`` counts them, which is what the LFM paper calls
  "FLOPs" (LFM 1.61B). One rule is pinned to the ``thop`` release the paper's figures come from (the
  ``thop`` 0.1.1 package on PyPI): a transposed convolution is charged like a convolution over its
  *output* (output elements x input channels x kernel). Current ``ultralytics-thop`` charges it over its
  input instead, 4x less for LFM's 2x2 stride-2 "up" kernel, which gives 1.6071 G instead of the
  paper's 1.6089 G. Everything else (convolutions without bias, 4 ops per BatchNorm element, free
  ReLU and max-pooling, ``in_features`` per Linear output) is the same in both releases.
- ``flops``: floating point operations from ``torch.utils.flop_counter`` (2 per multiply-accumulate of
  convolutions and matrix products; BatchNorm, ReLU and pooling are not counted).

Timings run the fast scorer of :mod:`bench.engine.inference` (what ``bench run`` executes) on random uint8
images that already sit on the device: warm-up calls first, then repeated timed calls, reported as the
median with quartiles. On CUDA each call is timed with CUDA events and a synchronisation.
Weights are left randomly initialised: neither counts nor timings depend on their values.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import thop
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from bench.analyses.process_memory import PeakMemory, fresh_process_peak
from bench.engine.inference import CPU_MICRO_BATCH, autocast_context, pick_device, prepare_scorer
from bench.errors import BenchError
from detectors import get_detector

log = logging.getLogger(__name__)

RESULT_KEYS = (
    "detector", "params", "trainable_params", "macs", "flops", "latency_ms", "throughput_img_s",
    "peak_memory_mb", "device", "torch_version", "settings",
)
MACS_CONVENTION = (
    "thop at batch 1 (the paper's 'FLOPs'); transposed convolutions charged over their output as in thop 0.1.1"
)
FLOPS_COUNTER = "torch.utils.flop_counter at batch 1 (2 per multiply-accumulate; BN, ReLU, pooling not counted)"


# ---------------------------------------------------------------------------------------------- counts


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable ones). LFM's frozen residual kernels count in the first only."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def _count_transpose_over_output(module: nn.ConvTranspose2d, inputs, output: torch.Tensor) -> None:
    # thop 0.1.1 registered its Conv2d rule for ConvTranspose2d too: output elements x input channels
    # (per group) x kernel area, no bias. The paper's 1.6089 G for LFM counts the "up" kernel this way.
    x = inputs[0]
    kernel_area = module.weight.shape[2] * module.weight.shape[3]
    module.total_ops += output.numel() * (x.shape[1] // module.groups) * kernel_area


def count_macs(model: nn.Module, input_size: int) -> int:
    """thop's multiply-accumulates of one ``input_size`` x ``input_size`` image, eval mode."""
    probe = copy.deepcopy(model).eval().cpu()  # thop hangs counters on modules: keep the caller's clean
    x = torch.randn(1, 3, input_size, input_size)
    macs, _ = thop.profile(
        probe, inputs=(x,), custom_ops={nn.ConvTranspose2d: _count_transpose_over_output}, verbose=False
    )
    return int(round(float(macs)))


def count_flops(model: nn.Module, input_size: int) -> int:
    """Floating point operations of one image by ``torch.utils.flop_counter``, eval mode."""
    probe = copy.deepcopy(model).eval().cpu()
    x = torch.randn(1, 3, input_size, input_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        probe(x)
    return int(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Seconds per timed call, in the order they ran."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def quartiles(self) -> tuple[float, float]:
        if len(self.seconds) < 2:
            return self.seconds[0], self.seconds[0]
        q1, _, q3 = statistics.quantiles(self.seconds, n=4, method="inclusive")
        return q1, q3


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


ANNOUNCE_AFTER_SECONDS = 5.0
"""`time_calls` says how long its calls should take when they take longer than this."""


def planned_calls(seconds_per_call: float, warmup: int, repeats: int, max_seconds: float, min_repeats: int) -> int:
    """How many calls `time_calls` makes when each takes `seconds_per_call`: the warm-up, then timed calls
    until `repeats` or until `max_seconds` of them have run (never fewer than `min_repeats`)."""
    timed = repeats if seconds_per_call <= 0 else min(repeats, max(min_repeats, math.ceil(max_seconds / seconds_per_call)))
    return warmup + timed


def time_calls(
    call, device: torch.device, warmup: int = 2, repeats: int = 10, max_seconds: float = 15.0, min_repeats: int = 3,
    bar=None, say=None,
) -> Timing:
    """Run ``call()`` ``warmup`` times untimed, then time up to ``repeats`` calls.

    Stops early once ``max_seconds`` of timed calls have run (but never before ``min_repeats``), so that
    a slow detector on a CPU does not take minutes. On CUDA every call is bracketed by CUDA events and
    followed by a synchronisation, so the time is the device's, not the launch's. ``bar`` (a tqdm bar) counts
    the calls, its total set from the first call's duration (`planned_calls`), so it shows an ETA; ``say``
    hears that estimate in words.
    """
    device = torch.device(device)
    first = time.perf_counter()

    def tick(done: int) -> None:
        if done == 1:
            per_call = time.perf_counter() - first
            planned = planned_calls(per_call, warmup, repeats, max_seconds, min_repeats)
            if bar is not None:
                bar.total = planned
            if say is not None and per_call * planned > ANNOUNCE_AFTER_SECONDS:
                say(f"  one call takes {per_call:.1f} s: about {per_call * (planned - 1):.0f} s more "
                    f"({planned - 1} calls)")
        if bar is not None:
            bar.update(1)

    for index in range(warmup):
        call()
        synchronize(device)
        tick(index + 1)
    seconds: list[float] = []
    started = time.perf_counter()
    while len(seconds) < repeats:
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            call()
            end.record()
            end.synchronize()
            seconds.append(start.elapsed_time(end) / 1000.0)
        else:
            t0 = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - t0)
        tick(warmup + len(seconds))
        if len(seconds) >= min_repeats and time.perf_counter() - started > max_seconds:
            break
    if bar is not None:
        bar.total = bar.n
        bar.refresh()
    return Timing(tuple(seconds))


# ---------------------------------------------------------------------------------------------- memory


MEMORY_LABELS = {
    "cuda": "torch.cuda.max_memory_allocated over a batch of {batch} (weights, input and activations)",
    "cpu": ("the peak resident set (VmHWM) of a fresh Python process scoring one batch of {batch}: the runtime "
            "(Python, torch's libraries), weights, input and the batch's activations and workspace; "
            "settings.activations_mb is the growth over the batch alone (bench run's CPU scorer runs a batch "
            f"in pieces of {CPU_MICRO_BATCH} images, so it hardly grows with the batch)"),
}
"""What `peak_memory_mb` measures on each device: the label `bench profile` prints beside the figure."""


# ---------------------------------------------------------------------------------------------- device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {cpu_model()} ({torch.get_num_threads()} threads)"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------- profile


def profile_detector(
    name: str,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    input_size: int = 256,
    amp: str = "off",
    channels_last: bool | None = None,
    compile: bool = False,
    warmup: int = 2,
    repeats: int = 10,
    max_seconds: float = 15.0,
    progress=None,
    bars: bool = False,
) -> dict:
    """All figures of one registered detector as the dict stored in ``<results>/profile/<name>.json``.

    ``progress`` is an optional ``callable(str)`` told what is being measured and, once a call's duration
    is known, how long the rest should take; ``bars``: tqdm bars (stderr, on a terminal) counting the calls.
    """
    say = progress or (lambda text: None)
    if batch_size < 1 or input_size < 2 or warmup < 0 or repeats < 1:
        raise BenchError("--batch-size and --repeats must be at least 1, --input-size at least 2, --warmup at least 0")
    device = pick_device(str(device))
    detector = get_detector(name)
    fixed = detector.preprocessing.input_size
    if fixed is not None and fixed != input_size:  # a ViT with learned position embeddings: one size only
        say(f"{name}: takes {fixed}x{fixed} inputs only; profiling at {fixed}x{fixed}, not {input_size}x{input_size}")
        input_size = fixed
    model = detector.build()
    if detector.preprocessing.even_crop and input_size % 2:
        raise BenchError(f"detector {name!r} needs even image sizes; --input-size {input_size} is odd")

    params, trainable = count_params(model)
    say(f"{name}: counting MACs and FLOPs at {input_size}x{input_size}")
    try:
        macs = count_macs(model, input_size)
    except (ValueError, RuntimeError) as error:  # a kernel or Top-K wider than what a tiny input leaves
        raise BenchError(f"detector {name!r} cannot run at --input-size {input_size}: {error}") from error
    flops = count_flops(model, input_size)

    scorer = prepare_scorer(model, detector.preprocessing, device, channels_last=channels_last, compile=compile)
    effective_amp = amp if device.type == "cuda" else "off"  # autocast is CUDA-only: CPU stays float32

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, 3, input_size, input_size), dtype=torch.uint8, device=device)

    def runner(pixels: torch.Tensor):
        def call():
            with torch.inference_mode(), autocast_context(device, effective_amp):
                return scorer(pixels)
        return call

    def bar(what: str):
        return tqdm(total=warmup + repeats, unit="call", desc=f"{name}: {what}", file=sys.stderr, leave=False,
                    disable=not bars or None)

    say(f"{name}: timing batch 1 on {device} ({warmup} warm-up + up to {repeats} timed calls, at most about "
        f"{max_seconds:.0f} s of timed calls)" + (" (the first call compiles)" if compile else ""))
    with bar("latency, batch 1") as progress_bar:
        latency = time_calls(runner(images(1)), device, warmup, repeats, max_seconds, bar=progress_bar, say=say)

    say(f"{name}: timing batch {batch_size} (throughput; {warmup} warm-up + up to {repeats} timed calls)")
    batch = images(batch_size)
    batch_call = runner(batch)
    with bar(f"throughput, batch {batch_size}") as progress_bar:
        if device.type == "cuda":
            for _ in range(warmup):  # before the memory baseline: compilation is not inference memory
                batch_call()
            memory = PeakMemory(device)
            memory.start()
            # one cold call after the reset so the peak is seen, then the timed ones
            throughput = time_calls(batch_call, device, warmup=1, repeats=repeats, max_seconds=max_seconds,
                                    bar=progress_bar, say=say)
            peak_mb, memory_method = memory.stop(), MEMORY_LABELS["cuda"].format(batch=batch_size)
        else:
            throughput = time_calls(batch_call, device, warmup, repeats, max_seconds, bar=progress_bar, say=say)
    if device.type != "cuda":
        say(f"{name}: peak memory of one batch {batch_size} in a fresh process (about the time of one call, "
            f"{throughput.median:.1f} s, plus starting Python and building the model)")
        fresh = fresh_process_peak(name, batch_size, input_size, channels_last)
        peak_mb = fresh["resident_mb"] + fresh["growth_mb"]
        memory_method = MEMORY_LABELS["cpu"].format(batch=batch_size) + (" (uncompiled)" if compile else "")

    lat_q1, lat_q3 = latency.quartiles()
    thr_q1, thr_q3 = throughput.quartiles()
    settings = {
        "device_type": device.type,
        "batch_size": batch_size,
        "input_size": input_size,
        "amp": effective_amp,
        "channels_last": bool(getattr(getattr(scorer, "_orig_mod", scorer), "channels_last", False)),
        "compile": compile,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "warmup": warmup,
        "repeats": {"latency": len(latency.seconds), "throughput": len(throughput.seconds)},
        "latency_ms_quartiles": [1000 * lat_q1, 1000 * lat_q3],
        "latency_ms_min": 1000 * min(latency.seconds),
        "throughput_img_s_quartiles": [batch_size / thr_q3, batch_size / thr_q1],
        "timing": "median of timed calls after warm-up; "
        + ("CUDA events with synchronisation" if device.type == "cuda" else "time.perf_counter"),
        "input": "random uint8 images already on the device, through the fast scorer of bench run",
        "memory": memory_method,
        **({"activations_mb": fresh["growth_mb"], "resident_before_batch_mb": fresh["resident_mb"],
            "memory_reading": fresh["method"]} if device.type != "cuda" else {}),
        "macs_convention": MACS_CONVENTION,
        "flops_counter": FLOPS_COUNTER,
        "weights": "random init (counts and timings do not depend on the values)",
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {
        "detector": name,
        "params": params,
        "trainable_params": trainable,
        "macs": macs,
        "flops": flops,
        "latency_ms": 1000 * latency.median,
        "throughput_img_s": batch_size / throughput.median,
        "peak_memory_mb": peak_mb,
        "device": device_name(device),
        "torch_version": torch.__version__,
        "settings": settings,
    }


def profile_detectors(names: str, *, device: str = "auto", output: str | None = None, batch_size: int = 32,
                      input_size: int = 256, amp: str = "off", channels_last: bool | None = None,
                      compile: bool = False, warmup: int = 2, repeats: int = 10,
                      progress=None, bars: bool = False) -> list[tuple[dict, Path]]:
    """Profile each named detector (every name checked first) and store each result as
    `<results>/profile/<detector>.json`, where `bench table` reads reproduced rows' FLOPs and Params.
    `progress(text)` hears what is being timed and how long it should take; `bars`: tqdm bars of the calls.
    Returns (figures, the file they were stored in) per detector."""
    from bench.engine.inference import pick_device
    from bench.engine.store import ResultsStore, atomic_write_json, file_stem, require_writable_folder
    from detectors import get_detectors

    detectors = get_detectors(names)
    torch_device = pick_device(device)
    if amp != "off" and torch_device.type != "cuda":
        log.warning("--amp %s applies to CUDA only; %s runs in float32", amp, torch_device)
    store = ResultsStore(output)
    require_writable_folder(Path(store.root) / "profile", "profiles")  # before the timing, not after it
    results = []
    if progress is not None:
        progress(f"profiling {len(detectors)} detector(s) on {torch_device}: per detector, params and MACs/FLOPs at "
                 f"batch 1, then latency (batch 1) and throughput (batch {batch_size}), each {warmup} warm-up and up "
                 f"to {repeats} timed calls (stopping early after about 15 s of timed calls), then peak "
                 "memory" + (" of one batch in a fresh process" if torch_device.type != "cuda" else "")
                 + "; a large model on a CPU takes minutes (the estimate follows the first call)")
    for detector in detectors:
        result = profile_detector(
            detector.name, torch_device, batch_size=batch_size, input_size=input_size, amp=amp,
            channels_last=channels_last, compile=compile, warmup=warmup, repeats=repeats, progress=progress,
            bars=bars,
        )
        path = Path(store.root) / "profile" / f"{file_stem(detector.name)}.json"
        atomic_write_json(path, result)
        results.append((result, path))
    return results
