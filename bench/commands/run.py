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

from bench.config import AMP_CHOICES, PROTOCOL_CHOICES, TRUNCATED_CHOICES


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
    parser.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="paper",
                        help="paper: every detector under the paper's protocol (default); own: each detector's own")
    parser.add_argument("--truncated", choices=TRUNCATED_CHOICES, default="skip",
                        help="truncated image files: skip them (default) or load them as the official code does")
    parser.add_argument("--amp", choices=AMP_CHOICES, default="off", help="CUDA autocast (default off)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on long runs)")
    parser.add_argument("--no-localisation", dest="localisation", action="store_false",
                        help="skip the localisation metrics on suites with forgery masks (bench.localisation)")
    parser.add_argument("--perturb", metavar="SPEC",
                        help="perturb every image (real and fake) before the protocol, e.g. jpeg:q=75, blur:sigma=2, "
                             "reencode:jpeg:q=95 (see `bench list perturbations`)")
    parser.add_argument("--json", action="store_true", help="print the metrics only, as JSON")


def config_from_args(args: argparse.Namespace):
    from bench.config import EvalConfig

    return EvalConfig(
        data_root=args.data_root, weights=args.weights, output=args.output, device=args.device,
        batch_size=args.batch_size, workers=args.workers, limit=args.limit, fresh=args.fresh,
        truncated=args.truncated, amp=args.amp, compile=args.compile, protocol=args.protocol,
        progress=not getattr(args, "quiet", False), localisation=getattr(args, "localisation", True),
        perturbation=getattr(args, "perturb", None),
    )


def run(args: argparse.Namespace) -> int:
    from bench import api

    config = config_from_args(args)
    selection = api.select_suites(args.suite, config.data_root)
    if selection.note:
        print(selection.note, file=sys.stderr if args.json else sys.stdout, flush=True)
    result = api.evaluate(args.detector, selection, config=config)
    if args.json:
        from bench.store import json_safe

        print(json.dumps(json_safe({name: r.metrics for name, r in result.runs.items()}), indent=1))
        return 0
    for item in result.runs.values():
        print(render_metrics(item, item.metrics, demo=result.demo))
        print(f"run folder: {item.folder}\n")
    print(f"done in {result.seconds:.1f}s on {result.device}")
    return 0


def render_metrics(result, metrics: dict, demo: bool) -> str:
    """A detector's metrics as text tables, one per suite (generators, then the suite's mean)."""
    from bench.textable import format_table

    def pct(value) -> str:
        return "-" if value is None or value != value else f"{100 * value:.1f}"

    lines = [
        f"## {result.display_name} | weights {result.weights} (sha256 {result.weights_sha256[:12]})"
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
    if metrics.get("localisation"):
        from bench.localisation import render_localisation

        lines.append(render_localisation(metrics["localisation"]))
    return "\n".join(lines)
