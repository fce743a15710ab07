"""Evaluate detectors on suites under the paper's protocol; scores and metrics go to the results store.

`--suite` takes a suite name or alias (forensynths/testset1, gangen/testset2, diffusionforensics/testset3,
ufd/testset4, diffusion1kstep/testset5), a group (gan, diffusion, all), a comma list, or a PATH laid out
the same way. With a group and none of its suites under the data root, the synthetic demo suites run
instead, with the bundled demo weights, and the first line of output says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.errors import BenchError

README_DATA_SECTION = "README.md, section 'Getting the paper's data'"
DEMO_FOR_GROUP = {"all": "demo", "gan": "demo-gan", "diffusion": "demo-diffusion"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", required=True, help="NAME[,NAME...] (see `bench list detectors`)")
    parser.add_argument("--suite", default="all", help="NAME|GROUP|PATH[,...] (default: all)")
    parser.add_argument("--data-root", help="default: $BENCH_DATA or ./datasets")
    parser.add_argument("--weights", help="NAME or PATH; default: each detector's official weights (demo on demo suites)")
    parser.add_argument("--output", help="results root (default: $BENCH_RESULTS or ./results)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: min(4, CPUs))")
    parser.add_argument("--limit", type=int, default=None, help="at most N real and N fake images per generator")
    parser.add_argument("--fresh", action="store_true", help="recompute instead of reusing stored scores")
    parser.add_argument("--truncated", choices=["skip", "load"], default="skip",
                        help="truncated image files: skip them (default) or load them as the official code does")
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off", help="CUDA autocast (default off)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on long runs)")
    parser.add_argument("--json", action="store_true", help="print the metrics only, as JSON")


def run(args: argparse.Namespace) -> int:
    from bench.inference import pick_device
    from bench.provenance import now_iso
    from bench.runner import DetectorRun, RunOptions, default_workers, evaluate, write_run
    from bench.store import ResultsStore
    from bench.suites import default_data_root
    from detectors import get_detectors, load_detector

    if args.batch_size < 1 or (args.workers is not None and args.workers < 0) or (args.limit is not None and args.limit < 1):
        raise BenchError("--batch-size and --limit must be at least 1, --workers at least 0")
    data_root = Path(args.data_root) if args.data_root else default_data_root()
    detectors = get_detectors(args.detector)
    say = (lambda text: print(text, file=sys.stderr)) if args.json else print

    suites, demo_note = choose_suites(args.suite, data_root)
    demo = all(r.suite.demo for r in suites)
    if demo and demo_note is None:
        from bench.demo import DEMO_NOTE

        demo_note = f"{' and '.join(r.suite.name for r in suites)}: {DEMO_NOTE}."
    if demo_note:
        say(demo_note)
    # demo suites get the demo weights by default, paper suites each detector's official ones
    weights_spec = args.weights or ("demo" if demo else None)
    loaded = [load_detector(d, weights_spec) for d in detectors]  # all weights checked before any work

    options = RunOptions(
        device=pick_device(args.device), batch_size=args.batch_size,
        workers=default_workers() if args.workers is None else args.workers,
        limit=args.limit, fresh=args.fresh, load_truncated=args.truncated == "load",
        compile=args.compile, amp=args.amp, progress=True,
    )
    store = ResultsStore(args.output)
    started_at, started = now_iso(), time.perf_counter()
    runs = [DetectorRun(item) for item in loaded]
    evaluate(runs, suites, store, options)
    outputs = {}
    for item in runs:
        folder, metrics = write_run(item, suites, store, options, data_root, started_at, note=demo_note)
        outputs[item.loaded.detector.name] = (folder, metrics)
    if args.json:
        from bench.store import json_safe

        print(json.dumps(json_safe({name: metrics for name, (_, metrics) in outputs.items()}), indent=1))
        return 0
    for item in runs:
        folder, metrics = outputs[item.loaded.detector.name]
        print(render_metrics(item.loaded, metrics, demo=demo))
        print(f"run folder: {folder}\n")
    print(f"done in {time.perf_counter() - started:.1f}s on {options.device}")
    return 0


def choose_suites(spec: str, data_root: Path):
    """Resolve --suite. A group with none of its suites present falls back to the demo suites."""
    from bench.suites import GROUPS, resolve_suites_building_demo

    resolved = resolve_suites_building_demo(spec, data_root)
    present = [r for r in resolved if r.exists]
    missing = [r for r in resolved if not r.exists]
    explicit = {part.strip() for part in spec.split(",")} - set(GROUPS)
    if spec in DEMO_FOR_GROUP and not present:
        from bench.demo import DEMO_NOTE

        demo = resolve_suites_building_demo(DEMO_FOR_GROUP[spec], data_root)
        note = (
            f"No paper suite found under {data_root.resolve()}: running the demo suites "
            f"{' and '.join(r.suite.name for r in demo)} with the bundled demo weights instead. "
            f"They are {DEMO_NOTE}. To run the paper's suites, see {README_DATA_SECTION}."
        )
        return demo, note
    for r in missing:
        named = r.suite.name in explicit or any(alias in explicit for alias in r.suite.aliases)
        message = f"suite {r.suite.name} not found at {r.root} (published at {r.suite.source})"
        if named:
            raise BenchError(f"{message}. Download it there or pass --data-root; see {README_DATA_SECTION}.")
        print(f"skipping {message}", file=sys.stderr)
    if not present:
        raise BenchError(f"none of the suites in {spec!r} is under {data_root}; see {README_DATA_SECTION}")
    return present, None


def render_metrics(loaded, metrics: dict, demo: bool) -> str:
    from bench.textable import format_table

    def pct(value) -> str:
        return "-" if value is None or value != value else f"{100 * value:.1f}"

    lines = [
        f"## {loaded.detector.display_name} | weights {loaded.weights.label} (sha256 {loaded.weights.sha256[:12]})"
        + ("  [synthetic demo data]" if demo else "")
    ]
    header = ["generator", "ACC", "AP", "real ACC", "fake ACC", "AUC", "EER", "oracle ACC", "n real", "n fake"]
    right = [False] + [True] * 9
    for suite, block in metrics["suites"].items():
        rows = []
        for name, m in [*block["generators"].items(), ("mean", block["mean"])]:
            rows.append([name, pct(m["acc"]), pct(m["ap"]), pct(m["r_acc"]), pct(m["f_acc"]), pct(m["auc"]),
                         pct(m["eer"]), pct(m["oracle_acc"]), m["n_real"], m["n_fake"]])
        lines += ["", f"### {suite}", format_table(header, rows, right)]
    if len(metrics["suites"]) > 1:
        m = metrics["mean"]
        lines += ["", f"mean over all generators: ACC {pct(m['acc'])}  AP {pct(m['ap'])}"]
    return "\n".join(lines)
