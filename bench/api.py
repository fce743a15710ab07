"""The Python API. Every `bench` verb is a thin layer over these functions.

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

The work of every verb lives below this façade (bench.engine: the evaluation; bench.analyses: what is
built on it; bench.outputs: what is rendered from results; bench.train); this module names it. The CLI
(bench.commands) parses arguments, calls these functions and prints what they return.
"""

from __future__ import annotations

from bench.engine.config import EvalConfig
from bench.engine.evaluation import (
    DetectorResult,
    Prediction,
    PredictResult,
    RunResult,
    SuiteSelection,
    collect_images,
    evaluate,
    load_detector,
    predict,
    select_suites,
)

__all__ = [
    "DetectorResult",
    "EvalConfig",
    "Prediction",
    "PredictResult",
    "RunResult",
    "SuiteSelection",
    "collect_images",
    "evaluate",
    "load_detector",
    "predict",
    "select_suites",
]
