"""`EvalConfig`: every option of an evaluation, in one dataclass (the CLI's flags map onto its fields)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bench.engine.calibration import CALIBRATION_METHODS
from bench.engine.calibration_quality import DEFAULT_BINS
from bench.engine.metrics import CALIBRATION_RULES, PROB_PRECISIONS
from bench.engine.uncertainty import (
    DEFAULT_LEVEL,
    DEFAULT_METHOD,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    METHODS,
    UncertaintyOptions,
    check_options,
)
from bench.errors import BenchError

PROTOCOL_CHOICES = ("paper", "own")
TRUNCATED_CHOICES = ("skip", "load")
AMP_CHOICES = ("off", "bf16", "fp16")


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class Flag:
    """How an EvalConfig field appears on the command line of the verbs that evaluate. One declaration
    per option: `bench.commands.run.add_evaluation_arguments` builds the flags from these and
    `config_from_args` maps them back, so a new option is one field here."""

    name: str
    help: str
    type: type | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    action: str | None = None
    """`store_true` / `store_false` for switches."""
    verbs: tuple[str, ...] = ("run", "sweep")
    """The verbs that offer the flag (`bench sweep` reports each level at 0.5 and has its own --perturb)."""
    repeat_hint: str = ""
    """Said when the flag is given twice, which is refused (exit 2) rather than keeping the last value:
    what to do instead (e.g. `bench sweep` for several perturbations)."""


def option(default, flag: Flag | None = None):
    """A dataclass field with its command-line flag (None: the API only)."""
    return field(default=default, metadata={"flag": flag} if flag else {})


RUN_ONLY = ("run",)
WEIGHTS_RULE = ("NAME, tag or PATH for every detector; NAME=WEIGHTS pairs (lfm=official,npr=demo: the detectors not "
                "named get their default); or a comma list, one per detector in --detector's order")
"""How `--weights` reads in every verb (bench.engine.evaluation.weights_per_detector), quoted by their help."""


@dataclass(frozen=True)
class EvalConfig:
    """How to evaluate. Defaults are the paper's protocol on this machine's best device."""

    data_root: str | None = option(None, Flag("--data-root", "default: $BENCH_DATA or ./datasets"))
    """Where the suites are (default: $BENCH_DATA or ./datasets)."""
    weights: str | None = option(None, Flag(
        "--weights", f"{WEIGHTS_RULE}. Default: each detector's own (demo on the demo suites)", metavar="WEIGHTS"))
    """The weights of the detectors given by name, by the rule every verb follows
    (bench.engine.evaluation.weights_per_detector): one name, tag or file for all; `detector=weights` pairs;
    or a comma list in detector order (default: each detector's own; `demo` on the demo suites)."""
    output: str | None = option(None, Flag("--output", "results root (default: $BENCH_RESULTS or ./results)"))
    """Results root (default: $BENCH_RESULTS or ./results)."""
    device: str = option("auto", Flag("--device", "auto, cpu or cuda (default auto)"))
    batch_size: int = option(64, Flag("--batch-size", "images per batch (default 64)", type=int))
    workers: int | None = option(None, Flag("--workers", "decoding processes (default: min(4, CPUs))", type=int))
    """Decoding processes (default: min(4, CPUs))."""
    limit: int | None = option(None, Flag("--limit", "at most N real and N fake images per generator", type=int))
    """At most this many real and this many fake images per generator (a sample, recorded as such)."""
    sample: int | None = option(None, Flag(
        "--sample", "score UnivFD's seeded sample of at most N real and N fake images per generator (its "
        "validate.py --max_sample, 1000: random.seed(0), shuffle, first N; 100 when a class has fewer than N)",
        type=int, metavar="N"))
    """At most this many real and fake images per generator, drawn as UnivFD's validate.py draws its
    ``--max_sample`` (`bench.engine.suites.univfd_sample`); recorded as `sample_per_class` in run.json. The
    files it leaves out change the unit's file list and so its cache key; a sample that keeps every file
    reuses the full set's scores."""
    fresh: bool = option(False, Flag("--fresh", "recompute instead of reusing stored scores", action="store_true"))
    """Recompute instead of reusing stored scores."""
    protocol: str = option("paper", Flag(
        "--protocol", "paper: every detector under the paper's protocol (default); own: each detector's own",
        choices=PROTOCOL_CHOICES))
    """`paper`: every detector under the paper's protocol; `own`: each detector's own paper's protocol."""
    truncated: str = option("skip", Flag(
        "--truncated", "truncated image files: skip them (default) or load them as the official code does",
        choices=TRUNCATED_CHOICES))
    """Truncated image files: `skip` them (default) or `load` them as the official code does."""
    amp: str = option("off", Flag("--amp", "CUDA autocast (default off)", choices=AMP_CHOICES))
    """CUDA autocast: off, bf16 or fp16 (CPU always scores in float32)."""
    compile: bool = option(False, Flag("--compile", "torch.compile the model (pays off on long runs)",
                                       action="store_true"))
    prob_precision: str = option("float32", Flag(
        "--prob-precision", "probabilities the metrics read: float32 (default; the official validate.py, whose "
        "float32 sigmoid ties every logit above ~16.6) or float64 (the exact order)", choices=PROB_PRECISIONS))
    """The probabilities the metrics read: `float32` (the official validate.py: float32 sigmoid, ties
    above a logit of ~16.6) or `float64` (the exact order). See bench.engine.metrics."""
    localisation: bool = option(True, Flag(
        "--no-localisation", "skip the localisation metrics on suites with forgery masks (bench.engine.localisation)",
        action="store_false", verbs=RUN_ONLY))
    """Localisation metrics (bench.engine.localisation) on suites with forgery masks, stored in metrics.json
    under "localisation"; under a perturbation too, each mask carried through the perturbation's geometry."""
    perturbation: str | None = option(None, Flag(
        "--perturb", "perturb every image (real and fake) before the protocol, e.g. jpeg:q=75, blur:sigma=2, "
        "reencode:jpeg:q=95 (see `bench list perturbations`)", metavar="SPEC", verbs=RUN_ONLY,
        repeat_hint="bench run applies one perturbation; `bench sweep --perturb` (repeatable) scores several "
                    "levels or families, e.g. --perturb jpeg:q=90,70 --perturb blur:sigma=1,2"))
    """A perturbation spec (`bench.engine.perturb`, e.g. ``jpeg:q=75``) applied to every decoded image, real and
    fake, before the protocol; stored in its canonical spelling (every parameter), which the cache key
    and run.json record."""
    align: str = option("raw", Flag(
        "--align", "re-encode before the protocol to remove a format shortcut: raw (default), jpeg96 (every image "
        "as JPEG q96), fakes-jpeg96 (DDA: the fakes only), match-real-quality (each fake at a JPEG quality drawn "
        "from its generator's real JPEGs); a comma list, or both (= raw,jpeg96), scores each and pairs them",
        metavar="POLICY[,POLICY]", verbs=RUN_ONLY))
    """Alignment policies (`bench.engine.align`), canonical comma list; several run one evaluation each, shown
    as pairs. `raw` is the files as published and adds nothing to the cache key."""
    resolution: str | None = option(None, Flag(
        "--resolution", "resolution policy for every suite: resize256, native, center-crop[:size=S], "
        "multicrop[:n=N,size=S] (default: each suite's authors' policy, see `bench list suites`)",
        metavar="POLICY"))
    """A resolution policy (`bench.engine.protocol`) for every suite instead of each suite's own; stored in
    its canonical spelling."""
    calibrate_on: str | None = option(None, Flag(
        "--calibrate-on", "choose a decision threshold on this set's images and report ACC at it (ACC@cal) "
        "beside ACC at 0.5 (e.g. progan4-val, demo-val)", metavar="SUITE_OR_PATH", verbs=RUN_ONLY))
    """A suite or folder whose images choose a decision threshold (`acc_cal` beside `acc`)."""
    calibrate_rule: str = option("real95", Flag(
        "--calibrate-rule", "real95 (default): the threshold that keeps 95%% of its real images real; "
        "eer: its equal-error point", choices=CALIBRATION_RULES, verbs=RUN_ONLY))
    """How: `real95` (keep 95% of its real images real) or `eer` (its equal-error point)."""
    calibrate_method: str = option("threshold", Flag(
        "--calibrate-method", "with --calibrate-on: threshold (default: a decision threshold by --calibrate-rule), "
        "or a probability map fitted on the set: temperature, platt or isotonic (bench/engine/calibration.py)",
        choices=CALIBRATION_METHODS, verbs=RUN_ONLY))
    """`threshold` (a decision threshold only) or a probability map (`temperature`, `platt`, `isotonic`)
    whose calibrated metrics and calibration quality are reported beside the raw ones."""
    ece_bins: int = option(DEFAULT_BINS, Flag(
        "--ece-bins", f"equal-width bins of the expected calibration error and reliability diagram (default "
        f"{DEFAULT_BINS})", type=int, verbs=RUN_ONLY))
    """Bins of the expected calibration error (bench.engine.calibration_quality)."""
    ci_level: float = option(DEFAULT_LEVEL, Flag(
        "--ci-level", f"confidence level of every metric's interval (default {DEFAULT_LEVEL})", type=float))
    """Confidence level of the bootstrap intervals (bench.engine.uncertainty)."""
    ci_resamples: int = option(DEFAULT_RESAMPLES, Flag(
        "--ci-resamples", f"bootstrap resamples per generator (default {DEFAULT_RESAMPLES}, at least 100)", type=int))
    ci_method: str = option(DEFAULT_METHOD, Flag(
        "--ci-method", "percentile (default) or bca (bias-corrected and accelerated)", choices=METHODS))
    ci_seed: int = option(DEFAULT_SEED, Flag("--ci-seed", f"seed of the resampling (default {DEFAULT_SEED})", type=int))
    intervals: bool = option(True)
    """Compute the intervals (False: values only, e.g. for a calibration set's scores)."""
    progress: bool = option(True)
    """Progress bars on stderr (the CLI's `-q` turns them off)."""
    write_run: bool = option(True)
    """Write a run folder per detector (False: scores and metrics are returned only, e.g. for checks)."""

    def __post_init__(self) -> None:
        problems = []
        if self.batch_size < 1:
            problems.append("--batch-size must be at least 1")
        if self.workers is not None and self.workers < 0:
            problems.append("--workers must be at least 0")
        if self.limit is not None and self.limit < 1:
            problems.append("--limit must be at least 1")
        if self.sample is not None and self.sample < 1:
            problems.append("--sample must be at least 1")
        if self.sample is not None and self.limit is not None:
            problems.append("--sample and --limit both choose which images are scored; give one")
        if self.truncated not in TRUNCATED_CHOICES:
            problems.append(f"truncated must be one of {', '.join(TRUNCATED_CHOICES)}")
        if self.amp not in AMP_CHOICES:
            problems.append(f"amp must be one of {', '.join(AMP_CHOICES)}")
        if self.protocol not in PROTOCOL_CHOICES:
            problems.append(f"protocol must be one of {', '.join(PROTOCOL_CHOICES)}")
        if self.prob_precision not in PROB_PRECISIONS:
            problems.append(f"prob_precision must be one of {', '.join(PROB_PRECISIONS)}")
        if self.calibrate_rule not in CALIBRATION_RULES:
            problems.append(f"calibrate_rule must be one of {', '.join(CALIBRATION_RULES)}")
        if self.calibrate_method not in CALIBRATION_METHODS:
            problems.append(f"--calibrate-method must be one of {', '.join(CALIBRATION_METHODS)}")
        if self.calibrate_method != "threshold" and self.calibrate_on is None:
            problems.append(f"--calibrate-method {self.calibrate_method} needs --calibrate-on SET (the images "
                            "to fit the map on)")
        if isinstance(self.ece_bins, bool) or not isinstance(self.ece_bins, int) or not 1 <= self.ece_bins <= 1000:
            problems.append(f"--ece-bins must be a whole number from 1 to 1000; got {self.ece_bins!r}")
        try:
            check_options(self.ci_level, self.ci_resamples, self.ci_method, self.ci_seed)
        except BenchError as error:
            problems.append(str(error))
        if problems:
            raise BenchError("; ".join(problems))
        from bench.engine.align import parse_policies

        object.__setattr__(self, "align", ",".join(parse_policies(self.align)))  # unknown: exit 2 with the list
        if self.resolution is not None:
            from bench.engine.protocol import parse_resolution

            if self.protocol == "own":
                raise BenchError("--resolution sets every suite's resolution policy and --protocol own each "
                                 "detector's own preprocessing: choose one")
            object.__setattr__(self, "resolution", parse_resolution(self.resolution).spec)
        if self.perturbation is not None:
            from bench.engine.perturb import parse

            level = parse(self.perturbation)  # a bad spec is a usage error before any work
            object.__setattr__(self, "perturbation", None if level is None else level.spec)

    @property
    def align_policies(self) -> tuple[str, ...]:
        return tuple(self.align.split(","))

    @property
    def uncertainty(self) -> UncertaintyOptions:
        return UncertaintyOptions(self.ci_level, self.ci_resamples, self.ci_method, self.ci_seed)

    @property
    def load_truncated(self) -> bool:
        return self.truncated == "load"

    @property
    def worker_count(self) -> int:
        return default_workers() if self.workers is None else self.workers
