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

from bench.engine.config import AMP_CHOICES, PROTOCOL_CHOICES, TRUNCATED_CHOICES
from bench.engine.metrics import CALIBRATION_RULES, PROB_PRECISIONS


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of an evaluation (EvalConfig's fields), shared by every verb that evaluates
    (`bench run`, `bench sweep`); `config_from_args` turns them back into an EvalConfig."""
    parser.add_argument("--detector", required=True, help="NAME[,NAME...] (see `bench list detectors`)")
    parser.add_argument("--suite", default="all", help="NAME|GROUP|PATH[,...] (default: all; demo if none is present)")
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
    parser.add_argument("--prob-precision", choices=PROB_PRECISIONS, default="float32",
                        help="probabilities the metrics read: float32 (default; the official validate.py, whose "
                             "float32 sigmoid ties every logit above ~16.6) or float64 (the exact order)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(parser)
    parser.add_argument("--no-localisation", dest="localisation", action="store_false",
                        help="skip the localisation metrics on suites with forgery masks (bench.engine.localisation)")
    parser.add_argument("--perturb", metavar="SPEC",
                        help="perturb every image (real and fake) before the protocol, e.g. jpeg:q=75, blur:sigma=2, "
                             "reencode:jpeg:q=95 (see `bench list perturbations`)")
    parser.add_argument("--calibrate-on", metavar="SUITE_OR_PATH",
                        help="choose a decision threshold on this set's images and report ACC at it (ACC@cal) "
                             "beside ACC at 0.5 (e.g. progan4-val, demo-val)")
    parser.add_argument("--calibrate-rule", choices=CALIBRATION_RULES, default="real95",
                        help="real95 (default): the threshold that keeps 95%% of its real images real; "
                             "eer: its equal-error point")
    parser.add_argument("--json", action="store_true", help="print the metrics only, as JSON")


def config_from_args(args: argparse.Namespace):
    from bench.engine.config import EvalConfig

    return EvalConfig(
        data_root=args.data_root, weights=args.weights, output=args.output, device=args.device,
        batch_size=args.batch_size, workers=args.workers, limit=args.limit, fresh=args.fresh,
        truncated=args.truncated, amp=args.amp, compile=args.compile, protocol=args.protocol,
        prob_precision=args.prob_precision, calibrate_on=args.calibrate_on, calibrate_rule=args.calibrate_rule,
        progress=not getattr(args, "quiet", False), localisation=getattr(args, "localisation", True),
        perturbation=getattr(args, "perturb", None),
    )


def run(args: argparse.Namespace) -> int:
    from bench import api, settings
    from bench.engine.distributed import stop_processes

    config = config_from_args(args)
    main_process = settings.torchrun_layout()["rank"] == 0  # under torchrun, rank 0 alone reports
    selection = api.select_suites(args.suite, config.data_root)
    if selection.note and main_process:
        print(selection.note, file=sys.stderr if args.json else sys.stdout, flush=True)
    result = api.evaluate(args.detector, selection, config=config)
    stop_processes()  # (on an error the process exits instead, and torchrun stops the others)
    if not main_process:
        return 0
    if args.json:
        from bench.engine.store import json_safe

        print(json.dumps(json_safe({name: r.metrics for name, r in result.runs.items()}), indent=1))
        return 0
    for item in result.runs.values():
        print(render_metrics(item, item.metrics, demo=result.demo))
        print(f"run folder: {item.folder}\n")
    print(f"done in {result.seconds:.1f}s on {result.device}")
    return 0


COLUMNS = ("acc", "ap", "r_acc", "f_acc", "auc", "eer", "oracle_acc", "tpr_at_fpr1", "tpr_at_fpr5", "acc_cal",
           "n_real", "n_fake")
"""The columns `bench run` prints, in order; names and formats come from bench.engine.metrics.METRICS."""


def render_metrics(result, metrics: dict, demo: bool) -> str:
    """A detector's metrics as text tables, one per suite (generators, then the suite's mean), the
    calibrated threshold when there is one, and where a generator's real images come from several
    folders, the real images' accuracy per folder."""
    from bench.engine.metrics import METRICS
    from bench.outputs.textable import format_table

    calibration = metrics.get("calibration")
    columns = [name for name in COLUMNS if not METRICS[name].calibrated or calibration]
    lines = [
        f"## {result.display_name} | weights {result.weights} (sha256 {result.weights_sha256[:12]})"
        + ("  [synthetic demo data]" if demo else "")
    ]
    if metrics.get("prob_precision") == "float64":
        lines.append("probabilities: float64 (exact order; the official code's float32 ties logits above ~16.6)")
    if calibration:
        from bench.engine.calibration import Calibration

        fields = {k: calibration[k] for k in ("on", "rule", "threshold_logit", "n_real", "n_fake")}
        lines.append(Calibration(suites=tuple(calibration["suites"]), **fields).sentence())
    header = ["generator", *(METRICS[name].display for name in columns)]
    right = [False] + [True] * len(columns)
    sources = []
    for suite, block in metrics["suites"].items():
        rows = []
        for name, m in [*block["generators"].items(), ("mean", block["mean"])]:
            rows.append([name, *(METRICS[c].render(m.get(c)) for c in columns)])
            for source, values in (m.get("real_sources") or {}).items():
                cal = f", at the calibrated threshold {METRICS['r_acc'].render(values['r_acc_cal'])}" \
                    if "r_acc_cal" in values else ""
                sources.append([suite, name, source, values["n_real"], METRICS["r_acc"].render(values["r_acc"]) + cal])
        lines += ["", f"### {suite}", format_table(header, rows, right)]
    if sources:
        lines += ["", "real images by source folder (real ACC):",
                  format_table(["suite", "generator", "source", "n real", "real ACC"], sources,
                               [False, False, False, True, False])]
    if len(metrics["suites"]) > 1:
        m = metrics["mean"]
        lines += ["", f"mean over all generators: ACC {METRICS['acc'].render(m['acc'])}  "
                      f"AP {METRICS['ap'].render(m['ap'])}"]
    if metrics.get("localisation"):
        lines.append(render_localisation(metrics["localisation"]))
    return "\n".join(lines)


def render_localisation(blocks: dict[str, dict]) -> str:
    """The localisation tables `bench run` prints under the detection metrics."""
    from bench.engine.localisation import DISPLAY, LOCALISATION_METRICS
    from bench.outputs.textable import format_table

    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    lines = []
    for suite, block in blocks.items():
        rows = [[name, *(pct(m[k]) for k in LOCALISATION_METRICS), m["n_masks"]]
                for name, m in [*block["generators"].items(), ("mean", block["mean"])]]
        lines += ["", f"### {suite}: localisation against the forgery masks ({block['source']})",
                  format_table(["generator", *(DISPLAY[k] for k in LOCALISATION_METRICS), "n masks"], rows,
                               [False, True, True, True, True, True])]
    return "\n".join(lines)
