"""Regression checks: committed baselines vs what the code computes now.

A baseline file (JSON, `results/baselines/*.json`) is one of two kinds:

``"kind": "metrics"`` - a detector + weights evaluated on suites::

    {"kind": "metrics", "detector": "lfm", "weights": {"name": "lfm:demo", "sha256": "..."},
     "suite": "demo", "limit": null, "metrics": ["acc", "ap"], "tolerance": 0.1, "metric_tolerances": {"ap": 0.2},
     "protocol": {"demo-gan": "native"},
     "expected": {"demo-gan": {"tconv": {"acc": 0.95, "ap": 0.99}, "mean": {...}}, "mean": {...}}}

``"kind": "logits"`` - per-image logits of a detector on a folder of files (no labels needed)::

    {"kind": "logits", "detector": "lfm", "weights": {...}, "images": "../../../shared/samples",
     "protocol": "resize256", "tolerance_logit": 1e-4, "optional": true, "expected": {"a.png": -60.8}}

A metrics baseline may also guard localisation on suites with forgery masks (bench.engine.localisation):
``"localisation": ["pixel_auc", "pointing"]`` names the metrics, ``--update`` fills
``"expected_localisation": {"demo-local": {"tconv": {"pixel_auc": 0.8, ...}, "mean": {...}}}``.

A metrics baseline may also hold ``"expected_logits": {"<suite>/<path>": logit, ...}``: the per-image logits of
the run, compared with ``tolerance_logit`` (default 1e-4). With a ``limit`` (the first N real and N fake
files of every generator) this is the fast regression check CI runs: any drift of decoding, preprocessing
or model moves some logit, on a few hundred images instead of the whole suite. The full-suite metrics
baselines live in ``results/baselines/full/`` (``bench check --baseline results/baselines/full``, or
``tox -e regression-full``).

Tolerances of metrics are in points (0.1 = 0.1 percentage points); ``metric_tolerances`` overrides per
metric. Metric names are those `bench.engine.metrics.METRICS` declares (fractions only, not counts); an unknown
name is an error. ``"prob_precision": "float64"`` checks metrics under the exact order instead of the
official float32 probabilities (the default). Relative paths (``images``, ``data_root``) are relative to the baseline file's folder.
``optional: true`` marks a baseline whose inputs may be absent (it is then reported as skipped, or as an
error when ``BENCH_REQUIRE_SHARED=1``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from bench import settings
from bench.engine.metrics import METRICS, PAPER_KEYS
from bench.engine.metrics import metric as declared_metric
from bench.errors import BenchError

DEFAULT_TOLERANCE_POINTS = 0.1
CHECKED_METRICS = PAPER_KEYS
"""What a metrics baseline checks when it names no metrics: the paper's two columns."""


@dataclass
class Difference:
    where: str
    metric: str
    expected: float | None
    got: float | None
    tolerance: float
    interval: tuple[float, float] | None = None
    """The fresh value's confidence interval (metrics.json's `intervals`), where it has one: a move that
    stays inside it is within the test set's sampling noise, one far outside it is not."""

    @property
    def delta(self) -> float | None:
        if self.expected is None or self.got is None:
            return None
        return self.got - self.expected


@dataclass
class CheckOutcome:
    baseline: Path
    status: str  # "ok", "regression", "weights-changed", "skipped", "error"
    message: str = ""
    differences: list[Difference] = field(default_factory=list)
    compared: int = 0
    fresh: dict | None = None
    fresh_logits: dict | None = None
    """Per-image logits of a metrics baseline that records them ("<suite>/<path>" -> logit)."""
    weights_sha256: str | None = None
    updated: bool = False
    """`--update` rewrote the baseline file with the fresh values."""


def load_baseline(path: Path) -> dict:
    try:
        baseline = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchError(f"cannot read baseline {path}: {error}") from error
    validate_baseline(baseline, path)
    for key in ("kind", "detector", "weights"):
        if key not in baseline:
            raise BenchError(f"baseline {path} has no {key!r} field (see bench/analyses/regression.py for the format)")
    if baseline["kind"] not in ("metrics", "logits"):
        raise BenchError(f"baseline {path}: unknown kind {baseline['kind']!r}; expected 'metrics' or 'logits'")
    if baseline["kind"] == "metrics":
        named = set(baseline.get("metrics", ())) | set(baseline.get("metric_tolerances", {}))
        for block in baseline.get("expected", {}).values():
            for values in block.values():
                named |= set(values) if isinstance(values, dict) else set()
            if not any(isinstance(v, dict) for v in block.values()):  # the overall mean's block
                named |= set(block)
        named -= set(baseline.get("localisation", ()))  # bench.engine.localisation's names, checked there
        for name in sorted(named):
            try:
                declared = declared_metric(name)
            except BenchError as error:
                raise BenchError(f"baseline {path}: {error}") from error
            if declared.format != "percent":
                raise BenchError(f"baseline {path}: {name} is a count, not a metric a tolerance in points applies to")
    return baseline


# ------------------------------------------------------------------------------------ baseline schema
# Each field: (what it must be, in words for the message; a check of a value). A wrong value is exit 2
# naming the field, before anything is evaluated: a `"limit": -3` used to score all but 3 images.

def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_tolerance(value) -> bool:
    return _is_number(value) and value >= 0


def _is_text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_value(value) -> bool:  # an expected metric or logit; null = undefined (e.g. AP of one class)
    return value is None or _is_number(value)


def _is_metric_block(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and _is_value(v) for k, v in value.items())


def _is_expected_metrics(value) -> bool:
    """{suite: {generator | "mean": {metric: value}}, "mean": {metric: value}}"""
    if not isinstance(value, dict):
        return False
    for suite, block in value.items():
        if suite == "mean":
            if not _is_metric_block(block):
                return False
        elif not (isinstance(block, dict) and all(_is_metric_block(b) for b in block.values())):
            return False
    return True


def _is_weights(value) -> bool:
    return (isinstance(value, dict) and (_is_text(value.get("name")) or _is_text(value.get("path")))
            and all(k in ("name", "path", "sha256") and (v is None or isinstance(v, str)) for k, v in value.items()))


COMMON_FIELDS = {
    "kind": ("'metrics' or 'logits'", lambda v: v in ("metrics", "logits")),
    "detector": ("a detector name", _is_text),
    "weights": ('{"name": NAME} or {"path": PATH}, with an optional "sha256"', _is_weights),
    "description": ("text", lambda v: isinstance(v, str)),
    "optional": ("true or false", lambda v: isinstance(v, bool)),
    "data_root": ("a folder path", _is_text),
}
KIND_FIELDS = {
    "metrics": {
        "suite": ("a suite name, group or folder", _is_text),
        "limit": ("null or a positive whole number (images per class and generator)",
                  lambda v: v is None or _is_positive_int(v)),
        "metrics": ("a list of metric names", lambda v: isinstance(v, list) and all(_is_text(m) for m in v)),
        "tolerance": ("a number >= 0 (points)", _is_tolerance),
        "metric_tolerances": ("{metric: a number >= 0 (points)}",
                              lambda v: isinstance(v, dict) and all(_is_tolerance(t) for t in v.values())),
        "protocol": ("{suite: protocol name}",
                     lambda v: isinstance(v, dict) and all(isinstance(p, str) for p in v.values())),
        "expected": ("{suite: {generator: {metric: number or null}}}", _is_expected_metrics),
        "localisation": ("a list of localisation metric names",
                         lambda v: isinstance(v, list) and all(_is_text(m) for m in v)),
        "expected_localisation": ("{suite: {generator: {metric: number or null}}}", _is_expected_metrics),
        "prob_precision": ("'float32' or 'float64'", lambda v: v in ("float32", "float64")),
        "tolerance_logit": ("a number >= 0", _is_tolerance),
        "expected_logits": ('{"<suite>/<path>": logit or null}',
                            lambda v: isinstance(v, dict) and all(_is_value(x) for x in v.values())),
    },
    "logits": {
        "images": ("a folder of images", _is_text),
        "protocol": ("a protocol name", _is_text),
        "tolerance_logit": ("a number >= 0", _is_tolerance),
        "expected": ("{file name: logit or null}",
                     lambda v: isinstance(v, dict) and all(_is_value(x) for x in v.values())),
    },
}
REQUIRED_FIELDS = {"metrics": ("kind", "detector", "weights", "suite"), "logits": ("kind", "detector", "weights", "images")}


def validate_baseline(baseline, path: Path) -> None:
    """Check a baseline against the declared fields above; BenchError naming the first wrong field."""
    from bench.errors import did_you_mean

    where = f"baseline {path}"
    if not isinstance(baseline, dict):
        raise BenchError(f"{where}: expected a JSON object, found a {type(baseline).__name__}")
    kind = baseline.get("kind")
    if kind not in KIND_FIELDS:
        shown = "no 'kind' field" if "kind" not in baseline else f"unknown kind {kind!r}"
        raise BenchError(f"{where}: {shown}; expected 'metrics' or 'logits' (see bench/analyses/regression.py for the format)")
    fields = {**COMMON_FIELDS, **KIND_FIELDS[kind]}
    for name in REQUIRED_FIELDS[kind]:
        if name not in baseline:
            raise BenchError(f"{where} has no {name!r} field, which a {kind} baseline needs "
                             f"({fields[name][0]}; see bench/analyses/regression.py for the format)")
    for name, value in baseline.items():
        if name not in fields:
            close = did_you_mean(name, fields)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise BenchError(f"{where}: unknown field {name!r} for a {kind} baseline.{hint} "
                             f"Known fields: {', '.join(fields)}.")
        meaning, check = fields[name]
        if not check(value):
            raise BenchError(f"{where}: field {name!r} must be {meaning}; found {json.dumps(value)[:80]}")


def expected_values(baseline: dict) -> int:
    """How many values a baseline expects (metrics, localisation metrics, per-image logits; an expected
    null counts: it checks that the value is undefined)."""
    def leaves(block) -> int:
        return sum(leaves(v) for v in block.values()) if isinstance(block, dict) else 1

    keys = ("expected",) if baseline["kind"] == "logits" else ("expected", "expected_localisation", "expected_logits")
    return sum(leaves(baseline.get(key) or {}) for key in keys)


def missing_generators(baseline: dict, fresh: dict) -> list[str]:
    """`suite/generator` of each expected generator that the fresh metrics do not have: its folder is
    not on disk (missing data, not a change of the code's results)."""
    missing = []
    for suite, block in baseline.get("expected", {}).items():
        if suite == "mean":
            continue
        fresh_suite = fresh.get("suites", {}).get(suite)
        if fresh_suite is None:
            missing.append(f"{suite} (the whole suite)")
            continue
        missing += [f"{suite}/{g}" for g in block if g != "mean" and g not in fresh_suite["generators"]]
    return missing


def baseline_files(explicit: list[str] | None, root: Path) -> list[Path]:
    if explicit:
        paths = []
        for p in map(Path, explicit):
            if p.is_dir():  # a folder of baselines, e.g. results/baselines/full
                found = sorted(p.glob("*.json"))
                if not found:
                    raise BenchError(f"no baseline files in {p}")
                paths += found
            elif p.is_file():
                paths.append(p)
            else:
                raise BenchError(f"baseline file {p} does not exist")
        return paths
    folder = root / "baselines"
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise BenchError(f"no baseline files in {folder}; write one with `bench check --update --baseline FILE`")
    return paths


def _close(expected, got, tolerance: float) -> bool:
    if expected is None and got is None:
        return True
    if expected is None or got is None:
        return False
    if isinstance(got, float) and math.isnan(got):
        return False
    return abs(got - expected) <= tolerance + 1e-12


def compare_metrics(baseline: dict, fresh: dict) -> tuple[list[Difference], int]:
    """Every expected metric vs the fresh metrics.json; tolerances in points, values as fractions.
    A baseline without `expected` values compares nothing: `check_baselines` refuses it (exit 2) unless
    `--update` is filling it."""
    default = float(baseline.get("tolerance", DEFAULT_TOLERANCE_POINTS))
    per_metric = {k: float(v) for k, v in baseline.get("metric_tolerances", {}).items()}
    differences, compared = [], 0

    def visit(where: str, expected: dict, got: dict | None) -> None:
        nonlocal compared
        for metric, value in expected.items():
            tolerance = per_metric.get(metric, default) / 100.0
            got_value = None if got is None else got.get(metric)
            compared += 1
            if not _close(value, got_value, tolerance):
                bounds = ((got or {}).get("intervals") or {}).get(metric) or {}
                interval = None if bounds.get("low") is None else (bounds["low"], bounds["high"])
                differences.append(Difference(where, metric, value, got_value, tolerance, interval))

    for suite, block in baseline.get("expected", {}).items():
        if suite == "mean":
            visit("mean", block, fresh.get("mean"))
            continue
        fresh_suite = fresh.get("suites", {}).get(suite)
        for generator, expected in block.items():
            if generator == "mean":
                got = None if fresh_suite is None else fresh_suite["mean"]
            else:
                got = None if fresh_suite is None else fresh_suite["generators"].get(generator)
            visit(f"{suite}/{generator}", expected, got)
    return differences, compared


def compare_localisation(baseline: dict, fresh: dict) -> tuple[list[Difference], int]:
    """Every expected localisation metric vs the fresh `localise_run` blocks (same tolerances)."""
    default = float(baseline.get("tolerance", DEFAULT_TOLERANCE_POINTS))
    per_metric = {k: float(v) for k, v in baseline.get("metric_tolerances", {}).items()}
    differences, compared = [], 0
    for suite, block in baseline.get("expected_localisation", {}).items():
        fresh_suite = fresh.get(suite)
        for generator, expected in block.items():
            got = None
            if fresh_suite is not None:
                got = fresh_suite["mean"] if generator == "mean" else fresh_suite["generators"].get(generator)
            for metric, value in expected.items():
                tolerance = per_metric.get(metric, default) / 100.0
                compared += 1
                got_value = None if got is None else got.get(metric)
                if not _close(value, got_value, tolerance):
                    differences.append(Difference(f"{suite}/{generator} (localisation)", metric, value, got_value,
                                                  tolerance))
    return differences, compared


def expected_localisation(blocks: dict, names) -> dict:
    """The `expected_localisation` block of a baseline, from `localise_run` blocks."""
    def pick(m: dict) -> dict:
        return {k: None if m.get(k) is None else round(m[k], 6) for k in names}

    return {suite: {**{g: pick(m) for g, m in block["generators"].items()}, "mean": pick(block["mean"])}
            for suite, block in blocks.items()}


def image_logits(scores, skipped=None) -> dict:
    """A run's scores (and skipped files) -> {"<suite>/<path>": logit}, None for a file that was skipped."""
    logits = {f"{suite}/{path}": float(logit) for suite, path, logit in zip(scores["suite"], scores["path"],
                                                                            scores["logit"])}
    if skipped is not None:
        logits.update({f"{suite}/{path}": None for suite, path in zip(skipped["suite"], skipped["path"])})
    return logits


def compare_image_logits(baseline: dict, fresh: dict) -> tuple[list[Difference], int]:
    """Each expected per-image logit vs the fresh one; an image missing on either side is a difference too
    (the sample itself changed)."""
    tolerance = float(baseline.get("tolerance_logit", 1e-4))
    expected = baseline.get("expected_logits") or {}
    differences = [Difference(name, "logit", value, fresh.get(name), tolerance)
                   for name, value in expected.items() if not _close(value, fresh.get(name), tolerance)]
    if expected:
        differences += [Difference(name, "logit", None, fresh[name], tolerance) for name in fresh if name not in expected]
    return differences, len(expected)


def expected_from_metrics(metrics: dict, names: tuple[str, ...] = CHECKED_METRICS) -> dict:
    """The `expected` block of a metrics baseline, from a metrics.json."""
    def pick(m: dict) -> dict:
        return {k: (None if m.get(k) is None or (isinstance(m[k], float) and math.isnan(m[k])) else round(m[k], 6))
                for k in names}

    expected = {}
    for suite, block in metrics["suites"].items():
        expected[suite] = {g: pick(m) for g, m in block["generators"].items()}
        expected[suite]["mean"] = pick(block["mean"])
    expected["mean"] = pick(metrics["mean"])
    return expected


def resolve_relative(baseline_path: Path, value: str) -> Path:
    path = Path(os.path.expandvars(value)).expanduser()
    return path if path.is_absolute() else (baseline_path.parent / path).resolve()


def render_differences(outcome: CheckOutcome) -> str:
    from bench.outputs.textable import format_table

    def show(value, metric: str) -> str:
        if value is None:
            return "-"
        # metrics are fractions shown in points; logits are shown as they are
        return f"{value:.5f}" if metric == "logit" else f"{100 * value:.2f}"

    def name(metric: str) -> str:
        return METRICS[metric].display if metric in METRICS else metric

    def noise(d: Difference) -> str:
        if d.interval is None:
            return "-"
        low, high = d.interval
        inside = d.expected is not None and low <= d.expected <= high
        return f"[{100 * low:.2f}, {100 * high:.2f}] " + ("expected inside" if inside else "expected outside")

    rows = [[d.where, name(d.metric), show(d.expected, d.metric), show(d.got, d.metric), show(d.delta, d.metric),
             show(d.tolerance, d.metric), noise(d)] for d in outcome.differences]
    return format_table(["where", "metric", "expected", "got", "delta", "tolerance", "got's 95% CI"], rows,
                        [False, False, True, True, True, True, False])


def _weights_spec(baseline: dict, path: Path) -> str:
    weights = baseline["weights"]
    if weights.get("name"):
        return weights["name"]
    if weights.get("path"):
        return str(resolve_relative(path, weights["path"]))
    raise BenchError(f"baseline {path}: weights need a 'name' or a 'path'")


def _missing_input(path: Path, baseline: dict, message: str) -> CheckOutcome:
    if baseline.get("optional") and not settings.require_optional_inputs():
        return CheckOutcome(path, "skipped", message)
    return CheckOutcome(path, "error", message)


def run_baseline(path: Path, baseline: dict, store, options, data_root: Path, update: bool = False) -> CheckOutcome:
    """Evaluate what one baseline names and compare. Reuses stored scores whose key matches; `options` is
    the EvalConfig the baseline is evaluated with (its `limit` comes from the baseline).
    With ``update``, weights whose sha256 changed are evaluated too (the baseline will record them)."""
    from detectors import load_detector

    try:
        loaded = load_detector(baseline["detector"], _weights_spec(baseline, path))
    except BenchError as error:
        return _missing_input(path, baseline, f"cannot load detector/weights: {error}")
    expected_sha = baseline["weights"].get("sha256")
    if expected_sha and loaded.weights.sha256 != expected_sha and not update:
        return CheckOutcome(
            path, "weights-changed",
            f"weights {loaded.weights.label} now have sha256 {loaded.weights.sha256[:16]}..., the baseline was made "
            f"with {expected_sha[:16]}...: not a regression of the code; rerun with --update if the new weights "
            "are intended",
        )
    if baseline["kind"] == "logits":
        outcome = _check_logits(path, baseline, loaded, options)
    else:
        outcome = _check_metrics(path, baseline, loaded, store, options, data_root)
    outcome.weights_sha256 = loaded.weights.sha256
    return outcome


def _check_metrics(path, baseline, loaded, store, options, data_root) -> CheckOutcome:
    from dataclasses import replace

    from bench.engine import evaluation
    from bench.engine.protocol import protocol_name

    if baseline.get("data_root"):
        data_root = resolve_relative(path, baseline["data_root"])
    spec = baseline["suite"]
    if "/" in spec:  # a folder suite, relative to the baseline file
        spec = str(resolve_relative(path, spec))
    from bench.engine.suites import resolve_suites_building_demo

    suites = resolve_suites_building_demo(spec, data_root, quiet=True)
    missing = [r for r in suites if not r.exists]
    if missing:
        where = ", ".join(f"{r.suite.name} ({r.root})" for r in missing)
        return _missing_input(path, baseline, f"data not found: {where}")
    protocol = baseline.get("protocol")
    if protocol:
        got = {r.suite.name: protocol_name(r.suite.resize) for r in suites}
        if got != protocol:
            return CheckOutcome(path, "error", f"the baseline's protocol {protocol} differs from the suites' {got}")
    selection = evaluation.SuiteSelection(suites, data_root)
    guard_maps = bool(baseline.get("localisation"))  # maps cost time: only for baselines that guard them
    result = evaluation.evaluate([loaded], selection, config=replace(
        options, limit=baseline.get("limit"), write_run=False, localisation=guard_maps,
        prob_precision=baseline.get("prob_precision", options.prob_precision)))
    fresh = result.runs[loaded.detector.name].metrics
    absent = missing_generators(baseline, fresh)
    if absent:
        where = ", ".join(f"{r.suite.name} ({r.root})" for r in suites)
        return _missing_input(path, baseline, f"data not found: generators {', '.join(absent)} are not on disk "
                                              f"under {where}")
    differences, compared = compare_metrics(baseline, fresh)
    if guard_maps:
        more, n_more = compare_localisation(baseline, fresh.get("localisation", {}))
        differences, compared = differences + more, compared + n_more
    fresh_logits = None
    if "expected_logits" in baseline:
        scored = result.runs[loaded.detector.name]
        fresh_logits = image_logits(scored.scores, scored.skipped)
        more, n = compare_image_logits(baseline, fresh_logits)
        differences, compared = differences + more, compared + n
    status = "regression" if differences else "ok"
    return CheckOutcome(path, status, differences=differences, compared=compared, fresh=fresh,
                        fresh_logits=fresh_logits)


def _check_logits(path, baseline, loaded, options) -> CheckOutcome:
    """Every listed file's logit, scored by `predict` (the decode, size guards and scorer of `bench
    predict`), against the baseline's within `tolerance_logit`."""
    from bench.engine.evaluation import predict
    from bench.engine.suites import IMAGE_EXTENSIONS

    folder = resolve_relative(path, baseline["images"])
    if not folder.is_dir():
        return _missing_input(path, baseline, f"image folder {folder} not found")
    tolerance = float(baseline.get("tolerance_logit", 1e-4))
    differences, fresh = [], {}
    expected_logits = baseline.get("expected") or {
        p.name: None for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS
    }
    names = list(expected_logits)
    present = [n for n in names if (folder / n).is_file()]
    for n in names:
        if n not in present:
            differences.append(Difference(n, "logit", expected_logits[n], None, tolerance))
            fresh[n] = "unusable: file not found"
    if present:
        result = predict(loaded, [folder / n for n in present], protocol=baseline.get("protocol", "resize256"),
                         device=options.device, progress=options.progress)
        for prediction in result.predictions:
            file_name = Path(prediction.path).name
            expected = expected_logits[file_name]
            fresh[file_name] = prediction.logit
            if expected is not None and not _close(expected, prediction.logit, tolerance):
                differences.append(Difference(file_name, "logit", expected, prediction.logit, tolerance))
        for skipped_path, reason in result.skipped:
            file_name = Path(skipped_path).name
            differences.append(Difference(file_name, "logit", expected_logits[file_name], None, tolerance))
            fresh[file_name] = f"unusable: {reason}"
    fresh = {n: fresh[n] for n in names}  # in the baseline's order, for --update
    status = "regression" if differences else "ok"
    compared = sum(v is not None for v in expected_logits.values())
    return CheckOutcome(path, status, differences=differences, compared=compared, fresh=fresh)


def updated_baseline(baseline: dict, outcome: CheckOutcome) -> dict:
    """The baseline with its expected values (and weights sha256) replaced by the fresh ones."""
    new = dict(baseline)
    if baseline["kind"] == "metrics":
        new["expected"] = expected_from_metrics(outcome.fresh, tuple(baseline.get("metrics", CHECKED_METRICS)))
        if baseline.get("localisation"):
            new["expected_localisation"] = expected_localisation(outcome.fresh.get("localisation", {}),
                                                                 baseline["localisation"])
        if outcome.fresh_logits is not None:
            new["expected_logits"] = outcome.fresh_logits
    else:
        new["expected"] = {k: v for k, v in outcome.fresh.items() if isinstance(v, float)}
    new["weights"] = {**baseline["weights"], "sha256": outcome.weights_sha256}
    return new


def check_baselines(baselines: list[str] | None = None, *, tolerance: float | None = None, update: bool = False,
                    data_root: str | Path | None = None, output: str | None = None, device: str = "auto",
                    workers: int | None = None, fresh: bool = False, on_outcome=None,
                    progress: bool = True) -> list[CheckOutcome]:
    """Check every baseline (files or folders; None: `<results>/baselines/*.json`) and return the
    outcomes in order; `on_outcome(outcome, baseline)` sees each as it is done. With `update`, each
    baseline whose fresh values differ is rewritten (`outcome.updated` is then True). `progress`: the
    scoring's bars with an ETA on stderr (on a terminal)."""
    from bench.engine.config import EvalConfig
    from bench.engine.store import ResultsStore, atomic_write_json
    from bench.engine.suites import default_data_root

    if tolerance is not None and tolerance < 0:
        raise BenchError("--tolerance must be >= 0 (points)")
    store = ResultsStore(output)
    root = Path(data_root) if data_root else default_data_root()
    options = EvalConfig(output=output, device=device, workers=workers, fresh=fresh, write_run=False,
                         progress=progress)
    outcomes = []
    for path in baseline_files(baselines, store.root):
        baseline = load_baseline(path)
        if tolerance is not None:
            baseline = {**baseline, "tolerance": tolerance, "metric_tolerances": {}}
        if not update and not expected_values(baseline):
            # `"expected": {}` would pass while checking nothing
            outcome = CheckOutcome(path, "error", "the baseline expects no value (its expected block is empty), so "
                                                  "it would pass while checking nothing; fill it with `bench check "
                                                  f"--update --baseline {path}` and review the values it writes")
        else:
            outcome = run_baseline(path, baseline, store, options, root, update=update)
        if update and outcome.fresh is not None:
            original = load_baseline(path)
            new = updated_baseline(original, outcome)
            if new != original:
                atomic_write_json(path, new)
                outcome.updated = True
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome, baseline)
    return outcomes
