"""`EvalConfig`: every option of an evaluation, in one dataclass (the CLI's flags map onto its fields)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bench.engine.metrics import CALIBRATION_RULES, PROB_PRECISIONS
from bench.errors import BenchError

PROTOCOL_CHOICES = ("paper", "own")
TRUNCATED_CHOICES = ("skip", "load")
AMP_CHOICES = ("off", "bf16", "fp16")


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class EvalConfig:
    """How to evaluate. Defaults are the paper's protocol on this machine's best device."""

    data_root: str | None = None
    """Where the suites are (default: $BENCH_DATA or ./datasets)."""
    weights: str | None = None
    """A weights name, tag or file for every detector given by name (default: each detector's own;
    `demo` on the demo suites)."""
    output: str | None = None
    """Results root (default: $BENCH_RESULTS or ./results)."""
    device: str = "auto"
    batch_size: int = 64
    workers: int | None = None
    """Decoding processes (default: min(4, CPUs))."""
    limit: int | None = None
    """At most this many real and this many fake images per generator (a sample, recorded as such)."""
    fresh: bool = False
    """Recompute instead of reusing stored scores."""
    truncated: str = "skip"
    """Truncated image files: `skip` them (default) or `load` them as the official code does."""
    amp: str = "off"
    """CUDA autocast: off, bf16 or fp16 (CPU always scores in float32)."""
    compile: bool = False
    perturbation: str | None = None
    """A perturbation spec (`bench.engine.perturb`, e.g. ``jpeg:q=75``) applied to every decoded image, real and
    fake, before the protocol; stored in its canonical spelling (every parameter), which the cache key
    and run.json record."""
    protocol: str = "paper"
    """`paper`: every detector under the paper's protocol; `own`: each detector's own paper's protocol."""
    prob_precision: str = "float32"
    """The probabilities the metrics read: `float32` (the official validate.py: float32 sigmoid, ties
    above a logit of ~16.6) or `float64` (the exact order). See bench.engine.metrics."""
    calibrate_on: str | None = None
    """A suite or folder whose images choose a decision threshold (`acc_cal` beside `acc`)."""
    calibrate_rule: str = "real95"
    """How: `real95` (keep 95% of its real images real) or `eer` (its equal-error point)."""
    progress: bool = True
    localisation: bool = True
    """Localisation metrics (bench.engine.localisation) on suites with forgery masks, stored in metrics.json
    under "localisation"; not computed under a perturbation (the maps would need the perturbed masks)."""
    write_run: bool = True
    """Write a run folder per detector (False: scores and metrics are returned only, e.g. for checks)."""

    def __post_init__(self) -> None:
        problems = []
        if self.batch_size < 1:
            problems.append("--batch-size must be at least 1")
        if self.workers is not None and self.workers < 0:
            problems.append("--workers must be at least 0")
        if self.limit is not None and self.limit < 1:
            problems.append("--limit must be at least 1")
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
        if problems:
            raise BenchError("; ".join(problems))
        if self.perturbation is not None:
            from bench.engine.perturb import parse

            level = parse(self.perturbation)  # a bad spec is a usage error before any work
            object.__setattr__(self, "perturbation", None if level is None else level.spec)

    @property
    def load_truncated(self) -> bool:
        return self.truncated == "load"

    @property
    def worker_count(self) -> int:
        return default_workers() if self.workers is None else self.workers
