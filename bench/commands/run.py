"""Evaluate detectors on suites under the paper's protocol; scores and metrics go to the results store.

`--suite` takes a suite name or alias (forensynths/testset1, gangen/testset2, diffusionforensics/testset3,
ufd/testset4, diffusion1kstep/testset5), a group (gan, diffusion, all), a comma list, or a PATH laid out
the same way. With a group and none of its suites under the data root, the synthetic demo suites run
instead, with the bundled demo weights, and the first line of output says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from bench.api import EvalConfig


class GivenOnce(argparse.Action):
    """A value option given twice is a usage error (exit 2), not the last one silently winning: with
    fifty `--perturb` flags only the last was applied. `hint` says what to do instead."""

    def __init__(self, *args, hint: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hint = hint

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = namespace.__dict__.setdefault("_given_once", {})
        if self.dest in given:
            hint = f"; {self.hint}" if self.hint else ""
            parser.error(f"{option_string} given twice ({given[self.dest]!r}, then {values!r}): give it once{hint}")
        given[self.dest] = values
        setattr(namespace, self.dest, values)


def add_evaluation_arguments(parser: argparse.ArgumentParser, verb: str = "run") -> None:
    """The options of an evaluation, built from EvalConfig's declared flags (bench.engine.config.Flag) for
    the verbs that evaluate (`bench run`, `bench sweep`); `config_from_args` maps them back. A value option
    may be given once (GivenOnce)."""
    several = "several go in one comma list"
    parser.add_argument("--detector", required=True, action=GivenOnce, hint=f"{several} (--detector lfm,npr)",
                        help="NAME[,NAME...] (see `bench list detectors`)")
    parser.add_argument("--suite", default="all", action=GivenOnce, hint=f"{several} (--suite gangen,ufd)",
                        help="NAME|GROUP|PATH[,...] (default: all; demo if none is present)")
    for item in dataclasses.fields(EvalConfig):
        flag = item.metadata.get("flag")
        if flag is None or verb not in flag.verbs:
            continue
        extra = {"action": flag.action} if flag.action else {
            "type": flag.type, "choices": flag.choices, "metavar": flag.metavar, "action": GivenOnce,
            "hint": flag.repeat_hint}
        parser.add_argument(flag.name, dest=item.name, default=item.default, help=flag.help,
                            **{k: v for k, v in extra.items() if v is not None})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(parser, "run")
    parser.add_argument("--json", action="store_true", help="print the metrics only, as JSON")


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The EvalConfig of the parsed flags (fields whose flag the verb does not offer keep their defaults)."""
    values = {item.name: getattr(args, item.name) for item in dataclasses.fields(EvalConfig)
              if item.metadata.get("flag") is not None and hasattr(args, item.name)}
    return EvalConfig(**values, progress=not getattr(args, "quiet", False))


def run(args: argparse.Namespace) -> int:
    from bench import api, settings

    config = config_from_args(args)
    main_process = settings.torchrun_layout()["rank"] == 0  # under torchrun, rank 0 alone reports
    selection = api.select_suites(args.suite, config.data_root, config.weights)
    if selection.note and main_process:
        print(selection.note, file=sys.stderr if args.json else sys.stdout, flush=True)
    result = api.evaluate(args.detector, selection, config=config)
    api.stop_processes()  # (on an error the process exits instead, and torchrun stops the others)
    if not main_process:
        return 0
    by_align = result.by_align or {result.align: result}
    if args.json:
        payload = {policy: {name: r.metrics for name, r in each.runs.items()} for policy, each in by_align.items()}
        # one policy: the metrics per detector as always; several: per policy, then per detector
        print(json.dumps(api.json_safe(payload if len(by_align) > 1 else payload[result.align]), indent=1))
        if not getattr(args, "quiet", False):
            print(result.summary(), file=sys.stderr)
        return 0
    for policy, each in by_align.items():
        for item in each.runs.values():
            aligned = "" if policy == "raw" else f"  [--align {policy}]"
            print(render_metrics(item, item.metrics, demo=result.demo).replace("\n", f"{aligned}\n", 1))
            print(f"run folder: {item.folder}\n")
    if len(by_align) > 1:
        print(render_paired(by_align))
    print(result.summary())
    return 0


def render_paired(by_align: dict) -> str:
    """Raw and aligned side by side (bench.outputs.tables.aligned), with the note on what a drop means."""
    from bench.api import paired_table, paired_text_rows
    from bench.outputs.textable import format_table

    table = paired_table({policy: {name: r.metrics for name, r in each.runs.items()}
                          for policy, each in by_align.items()})
    header, rows = paired_text_rows(table)
    lines = [f"## raw and aligned: {', '.join(table.policies)}",
             format_table(header, rows, [False, False, False] + [True] * (len(header) - 3))]
    return "\n".join(lines + table.notes)


COLUMNS = ("acc", "ap", "r_acc", "f_acc", "auc", "eer", "oracle_acc", "tpr_at_fpr1", "tpr_at_fpr5", "acc_cal",
           "n_real", "n_fake")
"""The columns `bench run` prints, in order; names and formats come from bench.engine.metrics.METRICS."""


def render_metrics(result, metrics: dict, demo: bool) -> str:
    """A detector's metrics as text tables, one per suite (generators, then the suite's mean), the
    calibrated threshold when there is one, and where a generator's real images come from several
    folders, the real images' accuracy per folder."""
    from bench.api import METRICS
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
        from bench.api import Calibration

        lines.append(Calibration.from_description(calibration).sentence())  # the note's WARNING included
    header = ["generator", *(METRICS[name].display for name in columns)]
    right = [False] + [True] * len(columns)
    sources = []
    for suite, block in metrics["suites"].items():
        rows = []
        for name, m in [*block["generators"].items(), ("mean", block["mean"])]:
            tied = any(str(note).startswith("ties:") for note in m.get("notes") or [])
            rows.append([name, *(METRICS[c].render(m.get(c)) + ("*" if tied and c == "ap" else "") for c in columns)])
            for source, values in (m.get("real_sources") or {}).items():
                cal = f", at the calibrated threshold {METRICS['r_acc'].render(values['r_acc_cal'])}" \
                    if "r_acc_cal" in values else ""
                sources.append([suite, name, source, values["n_real"], METRICS["r_acc"].render(values["r_acc"]) + cal])
        protocol = (result.info.get("protocol") or {}).get(suite)  # as run.json records it: what was done
        heading = f"### {suite}" + (f"  (protocol {protocol})" if protocol else "")
        lines += ["", heading, format_table(header, rows, right), *_format_beyond_the_mean(block, metrics)]
    if sources:
        lines += ["", "real images by source folder (real ACC):",
                  format_table(["suite", "generator", "source", "n real", "real ACC"], sources,
                               [False, False, False, True, False])]
    if len(metrics["suites"]) > 1:
        m = metrics["mean"]
        star = "*" if any(str(note).startswith("ties:") for note in m.get("notes") or []) else ""
        lines += ["", f"mean over all generators: ACC {METRICS['acc'].render(m['acc'])}  "
                      f"AP {METRICS['ap'].render(m['ap'])}{star}"]
    if metrics.get("notes"):
        starred = any(": ties:" in note for note in metrics["notes"])
        lines += ["", "notes" + (" (* beside AP: float32 ties move it; AP from the exact order is ap_exact in "
                                 "metrics.json)" if starred else "") + ":", *(f"- {note}" for note in metrics["notes"])]
    if metrics.get("localisation"):
        lines.append(render_localisation(metrics["localisation"]))
    return "\n".join(lines)


def _format_beyond_the_mean(block: dict, metrics: dict) -> list[str]:
    """Under a suite's table: its mean ACC and AP with their intervals, spread over the generators and
    worst generator, and the calibration quality (all read from metrics.json)."""
    from bench.api import CALIBRATION_DISPLAY, METRICS

    lines = []
    mean, spread = block["mean"], block.get("spread") or {}
    uncertainty = metrics.get("uncertainty") or {}
    for key in ("acc", "ap"):
        text = f"mean {METRICS[key].display} {METRICS[key].render(mean.get(key))}"
        interval = (mean.get("intervals") or {}).get(key) or {}
        if interval.get("low") is not None:
            text += (f" [{METRICS[key].render(interval['low'])}, {METRICS[key].render(interval['high'])}] "
                     f"({100 * uncertainty['level']:g}% {uncertainty['method']} bootstrap)")
        elif interval.get("reason"):
            text += f" (no interval: {interval['reason']})"
        if key in spread:
            s = spread[key]
            text += (f"; sd over {s['generators']} generators {100 * s['std']:.1f}, worst {s['worst']} "
                     f"{METRICS[key].render(s['worst_value'])}")
        lines.append(text)
    for name, label in (("calibration_quality", "calibration"), ("calibration_quality_cal", "after the map")):
        quality = mean.get(name)
        if quality:
            values = "  ".join(f"{CALIBRATION_DISPLAY[k]} {quality[k]:.3f}" for k in CALIBRATION_DISPLAY
                               if quality.get(k) is not None)
            lines.append(f"{label} (mean over generators; ECE with {quality['bins']} bins, Cllr in bits): {values}")
    return lines


def render_localisation(blocks: dict[str, dict]) -> str:
    """The localisation tables `bench run` prints under the detection metrics."""
    from bench.api import LOCALISATION_DISPLAY as DISPLAY
    from bench.api import LOCALISATION_METRICS
    from bench.outputs.textable import format_table

    def pct(value) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    lines = []
    for suite, block in blocks.items():
        rows = [[name, *(pct(m[k]) for k in LOCALISATION_METRICS), m["n_masks"]]
                for name, m in [*block["generators"].items(), ("mean", block["mean"])]]
        under = f", under {block['perturbation']}" if block.get("perturbation") else ""
        lines += ["", f"### {suite}: localisation against the forgery masks ({block['source']}{under})",
                  format_table(["generator", *(DISPLAY[k] for k in LOCALISATION_METRICS), "n masks"], rows,
                               [False, True, True, True, True, True])]
        lines += [f"note: {note}" for note in block.get("mask_notes") or []]
    return "\n".join(lines)
