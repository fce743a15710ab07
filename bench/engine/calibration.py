"""Decision thresholds chosen on a calibration set (`--calibrate-on SUITE_OR_PATH`).

ACC at a fixed 0.5 says little when a detector's scores are shifted: it may call most real photographs
fake while its AP is high. A threshold chosen on a separate set's real images (`real95`: the logit below
which 95% of them fall, so at most 5% are called fake) or at that set's equal-error point (`eer`) gives an
ACC that means something on new data. The calibration set is scored by the evaluation itself
(bench.engine.evaluation, cached like any other run); this module only fits the threshold: a logit,
applied as `logit > t`, recorded with where it came from in `run.json` and `metrics.json`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bench.engine.metrics import CALIBRATION_RULES, calibrate_threshold, probability
from bench.errors import BenchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Calibration:
    """A detector's calibrated threshold and its provenance."""

    on: str
    """The `--calibrate-on` value."""
    suites: tuple[str, ...]
    rule: str
    threshold_logit: float
    n_real: int
    n_fake: int
    note: str | None = None
    """A caveat about the set (e.g. from another domain than the evaluated suites), or None."""

    @property
    def threshold_prob(self) -> float:
        return probability(self.threshold_logit)

    def describe(self) -> dict:
        """What run.json and metrics.json record."""
        return {"on": self.on, "suites": list(self.suites), "rule": self.rule,
                "threshold_logit": self.threshold_logit, "threshold_prob": self.threshold_prob,
                "n_real": self.n_real, "n_fake": self.n_fake, "note": self.note}

    def sentence(self) -> str:
        how = ("the logit that keeps 95% of its real images real" if self.rule == "real95"
               else "its equal-error point")
        return (f"calibrated threshold: logit {self.threshold_logit:.4g} (prob {self.threshold_prob:.4g}), "
                f"{how}, on {', '.join(self.suites)} ({self.n_real} real, {self.n_fake} fake)"
                + (f". WARNING: {self.note}" if self.note else ""))


def fit_calibration(detector: str, scores, rule: str, on: str, suites) -> Calibration:
    """The threshold `rule` picks on a detector's scores of the calibration set (a frame with `label` and
    `logit`), with where it came from. Scoring the set is the evaluation's job (bench.engine.evaluation)."""
    if rule not in CALIBRATION_RULES:
        raise BenchError(f"--calibrate-rule {rule!r} is not one of {', '.join(CALIBRATION_RULES)}")
    n_real, n_fake = int((scores["label"] == 0).sum()), int((scores["label"] == 1).sum())
    needed = n_real if rule == "real95" else min(n_real, n_fake)
    if needed == 0:
        need = "real images" if rule == "real95" else "real and fake images"
        raise BenchError(f"--calibrate-on {on}: no scored {need} to calibrate {detector} on")
    threshold = calibrate_threshold(scores["label"].to_numpy(), scores["logit"].to_numpy(), rule)
    calibration = Calibration(on, tuple(suites), rule, threshold, n_real, n_fake)
    log.debug("%s: %s", detector, calibration.sentence())
    return calibration
