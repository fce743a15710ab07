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


def shifted_demo_weights(tmp_path):
    """lfm:demo with 25 added to its head's bias: the same ranking, but logits of +15 to +35 (the official
    checkpoint's reach +-30 to 60), where float32 probabilities tie at 1.0 and the precision matters."""
    from detectors.weights import get_weights_entry, local_path

    state = torch.load(local_path(get_weights_entry("lfm:demo")), weights_only=True)
    state["fc1.bias"] = state["fc1.bias"] + 25
    path = tmp_path / "lfm_demo_plus25.pth"
    torch.save(state, path)
    return path


@pytest.mark.slow
def test_calibrate_on_demo_val_reports_acc_at_the_threshold_and_tpr_at_1_percent_fpr(small_demo, tmp_path, capsys):
    out = tmp_path / "results"
    weights = shifted_demo_weights(tmp_path)
    argv = ["run", "--detector", "lfm", "--weights", str(weights), "--suite", "demo-gan", "--calibrate-on",
            "demo-val", "--data-root", str(small_demo), "--output", str(out), "--workers", "0", "--batch-size", "8"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ACC@cal" in printed and "TPR@1%FPR" in printed
    assert "calibrated threshold: logit" in printed and "demo-val" in printed
    info, metrics, scores = read_run(out)

    # the threshold: the 95th-percentile real logit of demo-val (real95), computed here by hand from the
    # calibration set's own scores, scored through the API
    from bench import api

    val = api.evaluate("lfm", "demo-val", weights=str(weights), data_root=str(small_demo),
                       output=str(tmp_path / "val"), write_run=False, workers=0).runs["lfm"].scores
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
        # TPR at 1% FPR reads the exact order of the logits whatever the precision (float32 ties above a
        # logit of 16.6 would make it 0 here: every real shares the fakes' probability of 1.0)
        real, fake = logits[labels == 0], logits[labels == 1]
        best = max([(fake >= t).mean() for t in [*np.unique(logits), np.inf] if (real >= t).mean() <= 0.01])
        assert m["tpr_at_fpr1"] == pytest.approx(best)
    assert metrics["prob_precision"] == info["prob_precision"] == "float32"
    assert (scores["logit"] > 17).any()  # the regime where the two precisions part

    # the exact ranking on request, from the same stored scores (no re-scoring: the cache is reused)
    assert main([*argv, "--prob-precision", "float64"]) == 0
    capsys.readouterr()
    written = [json.loads((folder / "metrics.json").read_text()) for folder in (out / "runs").iterdir()]
    assert sorted(m["prob_precision"] for m in written) == ["float32", "float64"]
    (exact,) = [m for m in written if m["prob_precision"] == "float64"]
    moved = 0
    for generator, m in exact["suites"]["demo-gan"]["generators"].items():
        rows = scores[scores["generator"] == generator]
        assert m["ap"] == pytest.approx(average_precision_score(rows["label"], rows["logit"]))
        moved += m["ap"] != metrics["suites"]["demo-gan"]["generators"][generator]["ap"]
    assert moved  # ties above a logit of 16.6 moved at least one generator's AP


def test_calibrating_on_an_evaluated_suite_is_refused(small_demo, tmp_path, capsys):
    code = main(["run", "--detector", "lfm", "--suite", "demo-val", "--calibrate-on", "demo-val", "--data-root",
                 str(small_demo), "--output", str(tmp_path / "r"), "--workers", "0"])
    assert code == 2
    assert "also being evaluated" in capsys.readouterr().err


def test_the_run_folder_lists_the_images_cropped_to_even_size(tmp_path, capsys):
    """GANGen-Detection is scored at native size; odd sizes lose their last row/column, and the run says
    which images (README: 'recorded per run')."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "GANGen-Detection"  # matched to the gangen suite: native size
    sizes = {"0_real": [(64, 64), (65, 64), (64, 67)], "1_fake": [(66, 66), (67, 65), (64, 64)]}
    odd = set()
    for label, shapes in sizes.items():
        folder = root / "AttGAN" / label
        folder.mkdir(parents=True)
        for i, (w, h) in enumerate(shapes):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
            if w % 2 or h % 2:
                odd.add(f"AttGAN/{label}/{i}.png")
    out = tmp_path / "results"
    assert main(["run", "--detector", "lfm", "--weights", "lfm:demo", "--suite", str(root), "--output", str(out),
                 "--workers", "0"]) == 0
    capsys.readouterr()
    (folder,) = sorted((out / "runs").iterdir())
    cropped = pd.read_csv(folder / "cropped.csv")
    assert set(cropped["path"]) == odd and set(cropped["generator"]) == {"AttGAN"}
    info = json.loads((folder / "run.json").read_text())
    assert info["n_cropped_to_even"] == len(odd) == 3 and info["cropped_unknown"] == 0
