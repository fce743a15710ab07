"""Issue 11 through `bench run`: calibrated thresholds, TPR at a fixed FPR, the probability precision of
the metrics, the cropped-images record, and train-only ablations without weights.

The demo suites are built small here (a few images per generator) by lowering the demo's default counts,
so each CLI call costs seconds, not the minute the full demo tree takes to build."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score

from bench.cli import main

SMALL = {"demo-gan": 3, "demo-diffusion": 2, "demo-train": 4, "demo-val": 8}


@pytest.fixture
def small_demo(tmp_path, monkeypatch):
    """A data root whose demo tree is built with SMALL counts."""
    from bench.demo import build

    monkeypatch.setattr(build, "DEFAULT_COUNTS", {**build.DEFAULT_COUNTS, **SMALL})
    root = tmp_path / "data"
    build.ensure_demo_data(root, quiet=True)
    return root


def test_a_train_only_ablation_has_no_weights_on_the_demo_either(small_demo, capsys):
    code = main(["run", "--detector", "lfm-no-rks", "--suite", "demo", "--data-root", str(small_demo)])
    assert code == 2
    err = capsys.readouterr().err
    assert "bench train --detector lfm-no-rks --train-set demo" in err


def official_ap(labels, logits) -> float:
    """LFM's validate.py: float32 logits, `.sigmoid()`, `.tolist()`, scikit-learn."""
    y_pred = torch.tensor(np.asarray(logits), dtype=torch.float32).sigmoid().tolist()
    return average_precision_score(labels, y_pred)


def read_run(out) -> tuple[dict, dict, pd.DataFrame]:
    (folder,) = sorted((out / "runs").iterdir())
    info = json.loads((folder / "run.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    return info, metrics, pd.read_parquet(folder / "scores.parquet")


@pytest.mark.slow
def test_calibrate_on_demo_val_reports_acc_at_the_threshold_and_tpr_at_1_percent_fpr(small_demo, tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["run", "--detector", "lfm", "--suite", "demo-gan", "--calibrate-on", "demo-val", "--data-root",
            str(small_demo), "--output", str(out), "--workers", "0", "--batch-size", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ACC@cal" in printed and "TPR@1%FPR" in printed
    assert "calibrated threshold: logit" in printed and "demo-val" in printed
    info, metrics, scores = read_run(out)

    # the threshold: the 95th-percentile real logit of demo-val (real95), computed here by hand from the
    # calibration set's own scores, scored through the API
    from bench import api

    val = api.evaluate("lfm", "demo-val", data_root=str(small_demo), output=str(tmp_path / "val"), write_run=False,
                       workers=0).runs["lfm"].scores
    reals = np.sort(val.loc[val["label"] == 0, "logit"].to_numpy())
    threshold = reals[math.ceil(0.95 * len(reals)) - 1]
    recorded = metrics["calibration"]
    assert recorded["threshold_logit"] == pytest.approx(threshold)
    assert (recorded["on"], recorded["rule"], recorded["n_real"]) == ("demo-val", "real95", SMALL["demo-val"])
    assert info["calibration"]["threshold_logit"] == pytest.approx(threshold)

    # every generator's ACC at that threshold and its TPR at 1% FPR, from scores.parquet by hand
    for generator, m in metrics["suites"]["demo-gan"]["generators"].items():
        rows = scores[scores["generator"] == generator]
        labels, logits = rows["label"].to_numpy(), rows["logit"].to_numpy()
        assert m["acc_cal"] == pytest.approx(((logits > threshold) == labels).mean())
        assert m["acc"] == pytest.approx(((torch.tensor(logits, dtype=torch.float32).sigmoid().numpy() > 0.5)
                                          == labels).mean())
        assert m["ap"] == official_ap(labels, logits)
        real, fake = logits[labels == 0], logits[labels == 1]
        best = max([(fake >= t).mean() for t in [*np.unique(logits), np.inf] if (real >= t).mean() <= 0.01])
        assert m["tpr_at_fpr1"] == pytest.approx(best)
    assert metrics["prob_precision"] == info["prob_precision"] == "float32"

    # the exact ranking on request, from the same stored scores (no re-scoring: the cache is reused)
    assert main([*argv, "--prob-precision", "float64", "--output", str(out)]) == 0
    capsys.readouterr()
    folders = sorted((out / "runs").iterdir())
    exact = json.loads((folders[-1] / "metrics.json").read_text())
    assert exact["prob_precision"] == "float64"
    for generator, m in exact["suites"]["demo-gan"]["generators"].items():
        rows = scores[scores["generator"] == generator]
        assert m["ap"] == pytest.approx(average_precision_score(rows["label"], rows["logit"]))


def test_calibrating_on_an_evaluated_suite_is_refused(small_demo, tmp_path, capsys):
    code = main(["run", "--detector", "lfm", "--suite", "demo-val", "--calibrate-on", "demo-val", "--data-root",
                 str(small_demo), "--output", str(tmp_path / "r"), "--workers", "0"])
    assert code == 2
    assert "also being evaluated" in capsys.readouterr().err
