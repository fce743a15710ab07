"""Decision thresholds and calibration maps fitted on a calibration set (`--calibrate-on SUITE_OR_PATH`,
`--calibrate-method`).

ACC at a fixed 0.5 says little when a detector's scores are shifted: it may call most real photographs
fake while its AP is high. Fitted on a separate set's scores, a calibration gives an ACC that means
something on new data (`acc_cal`, beside ACC, never replacing it):

- `threshold` (default): a logit threshold only, chosen by `--calibrate-rule`: `real95` (the logit below
  which 95% of the set's real images fall, so at most 5% are called fake) or `eer` (its equal-error point).
- `temperature`: one temperature T, probabilities sigmoid(logit / T) (Guo et al. 2017). It moves no
  decision (logit / T > 0 exactly when logit > 0), only how confident the probabilities are.
- `platt`: sigmoid(a logit + b) (Platt 1999), fitted by maximum likelihood.
- `isotonic`: a non-decreasing step map from logit to probability (Zadrozny and Elkan 2002,
  scikit-learn's IsotonicRegression), linear between its steps.

The three maps are fitted to Platt's smoothed targets ((N+ + 1) / (N+ + 2) for a fake, 1 / (N- + 2) for
a real) rather than to 0 and 1: on a calibration set that the detector separates perfectly the plain
maximum-likelihood fit has no finite answer (T -> 0, a -> infinity, isotonic steps of exactly 0 and 1
that make every later mistake infinitely costly). Each map's decision threshold is the logit where its
probability crosses 0.5, so `acc_cal` is the calibrated probability's accuracy at 0.5; and the map's
log-odds give the calibration quality after calibration (`calibration_quality_cal`, see
bench.engine.calibration_quality).

The calibration set is scored by the evaluation itself (bench.engine.evaluation, cached like any other
run); this module only fits. The fitted parameters and their source are recorded in `run.json` and
`metrics.json` (`calibration`), so a map can be rebuilt from them (`Calibration.from_description`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from bench.engine.metrics import CALIBRATION_RULES, calibrate_threshold, probability
from bench.errors import BenchError

log = logging.getLogger(__name__)

CALIBRATION_METHODS = ("threshold", "temperature", "platt", "isotonic")
MAPS = CALIBRATION_METHODS[1:]
"""The methods that fit a probability map (and so change the calibration quality), not only a threshold."""


@dataclass(frozen=True)
class Calibration:
    """A detector's calibrated threshold (and probability map) and its provenance."""

    on: str
    """The `--calibrate-on` value."""
    suites: tuple[str, ...]
    rule: str
    threshold_logit: float
    n_real: int
    n_fake: int
    method: str = "threshold"
    parameters: dict = field(default_factory=dict)
    """temperature: {"temperature"}; platt: {"a", "b"}; isotonic: {"x", "y"} (the map's steps)."""
    note: str | None = None
    """A caveat about the set (e.g. from another domain than the evaluated suites), or None."""

    @property
    def threshold_prob(self) -> float:
        return probability(self.threshold_logit) if math.isfinite(self.threshold_logit) else \
            (0.0 if self.threshold_logit < 0 else 1.0)

    @property
    def has_map(self) -> bool:
        return self.method in MAPS

    def log_odds(self, logits) -> np.ndarray:
        """The calibrated log-odds of fake for raw logits (a map's output; the raw logits for `threshold`)."""
        logits = np.asarray(logits, dtype=np.float64)
        p = self.parameters
        if self.method == "temperature":
            return logits / p["temperature"]
        if self.method == "platt":
            return p["a"] * logits + p["b"]
        if self.method == "isotonic":
            probs = np.interp(logits, p["x"], p["y"])  # IsotonicRegression.predict with out_of_bounds="clip"
            return np.log(probs) - np.log1p(-probs)
        return logits

    def describe(self) -> dict:
        """What run.json and metrics.json record."""
        return {"on": self.on, "suites": list(self.suites), "method": self.method,
                "rule": self.rule if self.method == "threshold" else None,
                "threshold_logit": self.threshold_logit, "threshold_prob": self.threshold_prob,
                "parameters": self.parameters, "n_real": self.n_real, "n_fake": self.n_fake, "note": self.note}

    @classmethod
    def from_description(cls, block: dict) -> Calibration:
        """The calibration metrics.json / run.json recorded (blocks written before `method` existed are
        thresholds)."""
        threshold = block.get("threshold_logit")
        return cls(on=block.get("on", ""), suites=tuple(block.get("suites") or ()), rule=block.get("rule") or "real95",
                   threshold_logit=math.nan if threshold is None else float(threshold),
                   n_real=int(block.get("n_real", 0)), n_fake=int(block.get("n_fake", 0)),
                   method=block.get("method") or "threshold", parameters=dict(block.get("parameters") or {}),
                   note=block.get("note"))

    def sentence(self) -> str:
        source = f"on {', '.join(self.suites)} ({self.n_real} real, {self.n_fake} fake)"
        where = f"logit {self.threshold_logit:.4g} (prob {self.threshold_prob:.4g})"
        warning = f". WARNING: {self.note}" if self.note else ""
        if self.method == "threshold":
            how = ("the logit that keeps 95% of its real images real" if self.rule == "real95"
                   else "its equal-error point")
            return f"calibrated threshold: {where}, {how}, {source}{warning}"
        p = self.parameters
        fitted = {"temperature": lambda: f"temperature T = {p['temperature']:.4g} (sigmoid(logit / T))",
                  "platt": lambda: f"Platt scaling sigmoid({p['a']:.4g} logit + {p['b']:.4g})",
                  "isotonic": lambda: f"isotonic map with {len(p['x'])} steps"}[self.method]()
        return f"calibration map: {fitted}, fitted {source}; its probability crosses 0.5 at {where}{warning}"


def _targets(labels: np.ndarray) -> np.ndarray:
    """Platt's smoothed targets: (N+ + 1) / (N+ + 2) for fakes, 1 / (N- + 2) for reals."""
    n_fake = int((labels == 1).sum())
    n_real = int((labels == 0).sum())
    return np.where(labels == 1, (n_fake + 1) / (n_fake + 2), 1 / (n_real + 2))


def _cross_entropy(log_odds: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(targets * np.logaddexp(0, -log_odds) + (1 - targets) * np.logaddexp(0, log_odds)))


def fit_temperature(labels, logits) -> float:
    """The T > 0 that minimises the cross-entropy of sigmoid(logit / T) against the smoothed targets."""
    from scipy.optimize import minimize_scalar

    targets = _targets(np.asarray(labels))
    logits = np.asarray(logits, dtype=np.float64)
    result = minimize_scalar(lambda log_t: _cross_entropy(logits / math.exp(log_t), targets),
                             bounds=(math.log(1e-3), math.log(1e3)), method="bounded",
                             options={"xatol": 1e-6})
    return float(math.exp(result.x))


def fit_platt(labels, logits) -> tuple[float, float]:
    """(a, b) minimising the cross-entropy of sigmoid(a logit + b) against the smoothed targets."""
    from scipy.optimize import minimize

    targets = _targets(np.asarray(labels))
    logits = np.asarray(logits, dtype=np.float64)

    def loss(params):
        a, b = params
        z = a * logits + b
        p = np.exp(-np.logaddexp(0, -z))
        grad_z = (p - targets) / logits.size
        return _cross_entropy(z, targets), np.array([np.dot(grad_z, logits), grad_z.sum()])

    result = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def fit_isotonic(labels, logits) -> tuple[list[float], list[float]]:
    """The steps (x, y) of a non-decreasing map from logit to probability, fitted to the smoothed targets."""
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(out_of_bounds="clip", increasing=True)
    model.fit(np.asarray(logits, dtype=np.float64), _targets(np.asarray(labels)))
    return model.X_thresholds_.astype(float).tolist(), model.y_thresholds_.astype(float).tolist()


def isotonic_threshold(x: list[float], y: list[float]) -> float:
    """The logit t where the isotonic map's probability first exceeds 0.5 (prob > 0.5 exactly when
    logit > t); -inf when it does everywhere, +inf when nowhere."""
    y_arr = np.asarray(y)
    above = np.flatnonzero(y_arr > 0.5)
    if above.size == 0:
        return math.inf
    k = int(above[0])
    if k == 0:
        return -math.inf
    x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
    return float(x0 + (0.5 - y0) / (y1 - y0) * (x1 - x0))


def fit_calibration(detector: str, scores, rule: str, on: str, suites, method: str = "threshold") -> Calibration:
    """The threshold or map `method` fits on a detector's scores of the calibration set (a frame with
    `label` and `logit`), with where it came from. Scoring the set is the evaluation's job
    (bench.engine.evaluation)."""
    if method not in CALIBRATION_METHODS:
        raise BenchError(f"--calibrate-method {method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
    if rule not in CALIBRATION_RULES:
        raise BenchError(f"--calibrate-rule {rule!r} is not one of {', '.join(CALIBRATION_RULES)}")
    labels = scores["label"].to_numpy()
    logits = scores["logit"].to_numpy(dtype=np.float64)
    n_real, n_fake = int((labels == 0).sum()), int((labels == 1).sum())
    needed = n_real if method == "threshold" and rule == "real95" else min(n_real, n_fake)
    if needed == 0:
        need = "real images" if method == "threshold" and rule == "real95" else "real and fake images"
        raise BenchError(f"--calibrate-on {on}: no scored {need} to calibrate {detector} on")
    parameters: dict = {}
    if method == "threshold":
        threshold = calibrate_threshold(labels, logits, rule)
    elif method == "temperature":
        parameters = {"temperature": fit_temperature(labels, logits)}
        threshold = 0.0
    elif method == "platt":
        a, b = fit_platt(labels, logits)
        if a <= 0:
            raise BenchError(f"--calibrate-on {on}: Platt scaling of {detector} fitted a slope of {a:.3g}: on this "
                             "set its logits do not rise with fakeness, so no increasing map fits")
        parameters = {"a": a, "b": b}
        threshold = -b / a
    else:
        x, y = fit_isotonic(labels, logits)
        parameters = {"x": x, "y": y}
        threshold = isotonic_threshold(x, y)
    calibration = Calibration(on, tuple(suites), rule, threshold, n_real, n_fake, method, parameters)
    log.debug("%s: %s", detector, calibration.sentence())
    return calibration
