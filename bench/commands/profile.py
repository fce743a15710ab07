"""Measure params, MACs/FLOPs, latency, throughput and peak memory of detectors.

`macs` are multiply-accumulates counted the way `thop` counts them at batch 1: what the LFM paper
reports as "FLOPs" (LFM 1.61B). `flops` are true floating point operations from
`torch.utils.flop_counter`. Latency (batch 1) and throughput (at --batch-size) time the fast scorer that
`bench run` uses, on random uint8 images already on the device: median of repeated calls after warm-up,
with quartiles. Results go to <results>/profile/<detector>.json, where `bench table` reads the FLOPs and
Params of reproduced rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench.errors import BenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", required=True, help="NAME[,NAME...] (see `bench list detectors`)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size of the throughput runs (default 32)")
    parser.add_argument("--input-size", type=int, default=256, help="square input side in pixels (default 256)")
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off",
                        help="CUDA autocast (default off; ignored on CPU, which stays float32)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels-last memory layout (default: on, as in bench run)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the scorer (the first calls compile)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing (default 2)")
    parser.add_argument("--repeats", type=int, default=10,
                        help="timed calls per measurement (default 10; fewer, at least 3, past 15 s)")
    parser.add_argument("--output", help="results root (default: $BENCH_RESULTS or ./results)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of the results only")


def run(args: argparse.Namespace) -> int:
    from bench import api

    started = time.perf_counter()
    profiled = api.profile(
        args.detector, device=args.device, output=args.output, batch_size=args.batch_size,
        input_size=args.input_size, amp=args.amp, channels_last=args.channels_last, compile=args.compile,
        warmup=args.warmup, repeats=args.repeats, bars=not getattr(args, "quiet", False),
        progress=None if getattr(args, "quiet", False) else (lambda text: print(text, file=sys.stderr, flush=True)),
    )
    results = [figures for figures, _ in profiled]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(render(results))
    print(f"done: {len(profiled)} detector(s) profiled in {time.perf_counter() - started:.1f} s; stored "
          + ", ".join(str(path) for _, path in profiled), file=sys.stderr)
    return 0


def render(results: list[dict]) -> str:
    from bench.outputs.textable import format_table

    s = results[0]["settings"] if results else {}
    cuda = s.get("device_type") == "cuda"
    peak = "GPU peak MB" if cuda else "process peak MB"
    header = ["detector", "params", "MACs (G)", "FLOPs (G)", "latency ms (b=1)", "img/s", peak,
              *([] if cuda else ["of which batch MB"])]
    rows = []
    for r in results:
        s = r["settings"]
        q1, q3 = s["latency_ms_quartiles"]
        t1, t3 = s["throughput_img_s_quartiles"]
        rows.append([
            r["detector"], f"{r['params']:,}", f"{r['macs'] / 1e9:.4f}", f"{r['flops'] / 1e9:.3f}",
            f"{r['latency_ms']:.2f} [{q1:.2f}-{q3:.2f}]",
            f"{r['throughput_img_s']:.1f} [{t1:.1f}-{t3:.1f}]", f"{r['peak_memory_mb']:.0f}",
            *([] if cuda else [f"{s.get('activations_mb', float('nan')):.0f}"]),
        ])
    if not results:
        raise BenchError("nothing was profiled")
    s = results[0]["settings"]
    notes = [
        f"device {results[0]['device']}, torch {results[0]['torch_version']}; img/s at batch {s['batch_size']}, "
        f"input {s['input_size']}x{s['input_size']}, amp {s['amp']}, channels_last {s['channels_last']}, "
        f"compile {s['compile']}",
        "latency and img/s: median [quartiles] of timed calls after warm-up; "
        "MACs: thop convention (the paper's 'FLOPs'); FLOPs: torch.utils.flop_counter",
        f"{peak}: {s['memory']}",
    ]
    other_sizes = [f"{r['detector']} {r['settings']['input_size']}x{r['settings']['input_size']}"
                   for r in results if r["settings"]["input_size"] != s["input_size"]]
    if other_sizes:  # detectors that take one input size only (a ViT with learned position embeddings)
        notes.append("fixed input sizes: " + ", ".join(other_sizes))
    return format_table(header, rows, [False] + [True] * (len(header) - 1)) + "\n\n" + "\n".join(notes)
