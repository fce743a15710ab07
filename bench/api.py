"""The Python API: every `bench` verb's work, reachable from here.

```python
from bench import api

result = api.evaluate("lfm,npr", "demo")                      # -> RunResult
result.runs["lfm"].metrics["mean"]["acc"]                     # fractions in [0, 1]
result.runs["lfm"].scores                                     # one row per image (pandas)

detector = api.load_detector("lfm", "lfm:official")            # or a checkpoint path
api.evaluate([detector], "forensynths", limit=100)            # a loaded (or your own) detector
for p in api.predict(detector, ["photo.png"]).predictions:
    print(p.path, p.logit, p.prob)
```

The work lives below this facade, in layers that import only downwards (docs/internals.md; checked by
import-linter): bench.engine (the evaluation: suites, decoding, scoring, the cache, metrics),
bench.analyses (what is built on it: sweeps, audits, checks, explanations, embeddings, profiling, data
checks), bench.outputs (what is rendered from results: tables, the HTML report, pictures) and
bench.train. The CLI (bench.commands) parses arguments, calls these functions and prints what they return.

Names are imported on first use (`bench --help` does not import torch); `dir(bench.api)` lists them all.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

_EXPORTS = {
    # the evaluation (bench.engine)
    "EvalConfig": "bench.engine.config:EvalConfig",
    "evaluate": "bench.engine.evaluation:evaluate",
    "predict": "bench.engine.evaluation:predict",
    "load_detector": "bench.engine.evaluation:load_detector",
    "select_suites": "bench.engine.evaluation:select_suites",
    "collect_images": "bench.engine.evaluation:collect_images",
    "weights_per_detector": "bench.engine.evaluation:weights_per_detector",
    "WEIGHTS_RULE": "bench.engine.config:WEIGHTS_RULE",
    "RunResult": "bench.engine.evaluation:RunResult",
    "DetectorResult": "bench.engine.evaluation:DetectorResult",
    "PredictResult": "bench.engine.evaluation:PredictResult",
    "Prediction": "bench.engine.evaluation:Prediction",
    "SuiteSelection": "bench.engine.evaluation:SuiteSelection",
    "Calibration": "bench.engine.calibration:Calibration",
    "CALIBRATION_METHODS": "bench.engine.calibration:CALIBRATION_METHODS",
    "CALIBRATION_DISPLAY": "bench.engine.calibration_quality:DISPLAY",
    "UncertaintyOptions": "bench.engine.uncertainty:UncertaintyOptions",
    "CI_METHODS": "bench.engine.uncertainty:METHODS",
    "stop_processes": "bench.engine.distributed:stop_processes",
    "json_safe": "bench.engine.store:json_safe",
    "list_runs": "bench.engine.results:list_runs",
    "unreadable_note": "bench.engine.results:unreadable_note",
    "METRICS": "bench.engine.metrics:METRICS",
    "LOCALISATION_METRICS": "bench.engine.localisation:LOCALISATION_METRICS",
    "LOCALISATION_DISPLAY": "bench.engine.localisation:DISPLAY",
    "PROTOCOLS": "bench.engine.protocol:PROTOCOLS",
    "RESOLUTION_POLICIES": "bench.engine.protocol:RESOLUTION_POLICIES",
    "ALIGN_POLICIES": "bench.engine.align:POLICIES",
    "SUITES": "bench.engine.suites:SUITES",
    "GROUPS": "bench.engine.suites:GROUPS",
    "suite_resolution": "bench.engine.suites:suite_resolution",
    "README_DATA_SECTION": "bench.engine.suites:README_DATA_SECTION",
    "default_data_root": "bench.engine.suites:default_data_root",
    "CHAINS": "bench.engine.perturb:CHAINS",
    "DEFAULT_GRIDS": "bench.engine.perturb:DEFAULT_GRIDS",
    "parse_sweep": "bench.engine.perturb:parse_sweep",
    "describe_perturbations": "bench.engine.perturb:describe",
    # analyses built on it (bench.analyses)
    "run_sweep": "bench.analyses.sweep:run_sweep",
    "render_tables": "bench.analyses.sweep:render_tables",
    "ap_changes": "bench.analyses.sweep:ap_changes",
    "audit": "bench.analyses.audit_align:audit_with_alignment",
    "audit_runs": "bench.analyses.audit:audit_runs",
    "write_audit": "bench.analyses.audit:write_audit",
    "compare": "bench.analyses.compare:compare_runs",
    "Comparison": "bench.analyses.compare:Comparison",
    "COMPARE_FORMATS": "bench.analyses.compare:FORMATS",
    "check": "bench.analyses.regression:check_baselines",
    "render_differences": "bench.analyses.regression:render_differences",
    "check_data": "bench.analyses.data_check:check_data",
    "show_path": "bench.engine.files:path_text",
    "explain": "bench.analyses.explain:explain_files",
    "embed": "bench.analyses.embeddings:embed",
    "profile": "bench.analyses.profile:profile_detectors",
    "visual_figure": "bench.analyses.visual_figure:write_visual_figure",
    # rendered from results (bench.outputs)
    "paper_tables": "bench.outputs.tables.paper_tables:paper_tables",
    "write_paper_tables": "bench.outputs.tables.paper_tables:write_paper_tables",
    "TABLE_FORMATS": "bench.outputs.tables.render:FORMATS",
    "report": "bench.outputs.html_report:write_report",
    "paired_table": "bench.outputs.tables.aligned:paired_table",
    "paired_text_rows": "bench.outputs.tables.aligned:paired_text_rows",
    # training (bench.train)
    "train": "bench.train:train",
    "train_config": "bench.train:train_config",
    "TrainConfig": "bench.train:TrainConfig",
    "RECIPE_FIELDS": "bench.train:RECIPE_FIELDS",
    # the registries (detectors)
    "get_detector": "detectors:get_detector",
    "list_detectors": "detectors:list_detectors",
    "list_prefixes": "detectors.registry:list_prefixes",
    "all_weights": "detectors.weights:all_weights",
    "local_path": "detectors.weights:local_path",
    "fetch_weights": "detectors.weights:fetch_weights",
}
"""Public name -> "module:attribute" where it lives."""

__all__ = sorted([*_EXPORTS, "data_root"])


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bench.api' has no attribute {name!r}")
    module, attribute = _EXPORTS[name].split(":")
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def data_root(path: str | None = None) -> Path:
    """The data root a verb works on: `path` as given (made absolute), else $BENCH_DATA or ./datasets."""
    from bench.engine.suites import default_data_root

    return (Path(path).expanduser() if path else default_data_root()).absolute()


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from bench.analyses.audit_align import audit_with_alignment as audit  # noqa: F401
    from bench.analyses.embeddings import embed  # noqa: F401
    from bench.analyses.explain import explain_files as explain  # noqa: F401
    from bench.analyses.profile import profile_detectors as profile  # noqa: F401
    from bench.analyses.regression import check_baselines as check  # noqa: F401
    from bench.engine.config import EvalConfig  # noqa: F401
    from bench.engine.evaluation import (  # noqa: F401
        DetectorResult,
        Prediction,
        PredictResult,
        RunResult,
        SuiteSelection,
        evaluate,
        load_detector,
        predict,
        select_suites,
    )
