"""Caveats travel with the numbers (issue 22): float32 ties that move AP are warned about on stderr and
noted beside the number in `bench run`'s output and metrics.json; the non-paper metrics read the exact order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from tests_support import write_suite

from bench.cli import main
from detectors import export_state_dict, get_detector


def saturated_lfm(path: Path) -> Path:
    """A random LFM whose head is scaled and shifted so that its logits reach +15..+55 on the test images:
    reals and fakes above ~16.6 share the float32 probability 1.0 (the official checkpoint's regime)."""
    torch.manual_seed(0)
    detector = get_detector("lfm")
    state = export_state_dict(detector.build(), detector)
    state["fc1.weight"] *= 30000
    state["fc1.bias"] += 25
    torch.save(state, path)
    return path


@pytest.fixture
def tied_run(tmp_path, capsys):
    suite = write_suite(tmp_path / "suite", {"a": 8}, size=(32, 32))
    weights = saturated_lfm(tmp_path / "saturated.pth")
    out = tmp_path / "results"
    assert main(["run", "--detector", "lfm", "--weights", str(weights), "--suite", str(suite), "--output", str(out),
                 "--workers", "0"]) == 0
    captured = capsys.readouterr()
    (folder,) = (out / "runs").iterdir()
    return folder, captured


def test_ties_that_move_ap_are_warned_noted_and_starred(tied_run):
    folder, captured = tied_run
    scores = pd.read_parquet(folder / "scores.parquet")
    labels, logits = scores["label"].to_numpy(), scores["logit"].to_numpy()
    official = average_precision_score(labels, torch.tensor(logits, dtype=torch.float32).sigmoid().numpy())
    exact = average_precision_score(labels, logits)
    assert exact - official > 0.001, "premise: the saturated head's ties move AP"
    metrics = json.loads((folder / "metrics.json").read_text())
    a = metrics["suites"]["suite"]["generators"]["a"]
    assert a["ap"] == pytest.approx(official) and a["ap_exact"] == pytest.approx(exact)
    assert a["auc"] == pytest.approx(roc_auc_score(labels, logits))  # exact order, not the tied probabilities
    both = (f"{100 * official:.1f}", f"{100 * exact:.1f}")
    (note,) = [n for n in metrics["notes"] if n.startswith("suite/a: ties:")]
    assert all(value in note for value in both)
    assert "float32 ties move AP" in captured.err and all(value in captured.err for value in both)
    assert f"{100 * official:.1f}*" in captured.out and note in captured.out  # starred, the note printed below


# ------------------------------------------------------------------- the report says what metrics.json says


@pytest.fixture
def calibrated_tied_run(tmp_path, capsys):
    suite = write_suite(tmp_path / "mine", {"a": 8, "b": 6}, size=(32, 32), seed=1)
    calibration = write_suite(tmp_path / "val", {"v": 6}, size=(32, 32), seed=2)
    weights = saturated_lfm(tmp_path / "saturated.pth")
    out = tmp_path / "results"
    assert main(["run", "--detector", "lfm", "--weights", str(weights), "--suite", str(suite), "--output", str(out),
                 "--workers", "0", "--calibrate-on", str(calibration), "--json"]) == 0
    capsys.readouterr()
    (folder,) = (out / "runs").iterdir()
    return folder


def test_report_legends_curves_and_calibration_come_from_metrics_json(tmp_path, calibrated_tied_run):
    import re

    from browser_support import parse_page

    from bench.outputs.html_report import charts
    from bench.outputs.html_report.runs import label_runs, read_report_run

    folder = calibrated_tied_run
    metrics = json.loads((folder / "metrics.json").read_text())
    out = tmp_path / "report.html"
    assert main(["report", str(folder), "--output", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    generators = metrics["suites"]["mine"]["generators"]
    # every legend entry, repeated in the figure's alt text, is metrics.json's figure
    for kind, key, name in (("ROC", "auc", "AUC"), ("Precision-recall", "ap", "AP")):
        alt = re.search(rf'alt="{kind} curves per generator on mine: ([^"]*)"', html).group(1)
        for generator, values in generators.items():
            assert f"{generator}: LFM: {name} {100 * values[key]:.1f}" in alt, (kind, generator, alt)
    # the curves are drawn under the convention of those figures: their areas are the figures (scikit-learn)
    run = read_report_run(folder)
    label_runs([run])
    for generator, values in generators.items():
        labels, scores = charts.curve_scores(run, "mine", generator, "roc")
        assert roc_auc_score(labels, scores) == pytest.approx(values["auc"])
        labels, scores = charts.curve_scores(run, "mine", generator, "pr")
        assert average_precision_score(labels, scores) == pytest.approx(values["ap"])
    tied = [g for g, v in generators.items() if abs(v["ap"] - v["ap_exact"]) > 0.001]
    assert tied, "premise: ties move AP on at least one generator"
    page = parse_page(html)
    details = next(t for t in page.tables if t[0][0] == "LFM" and "ACC@cal" in t[0])
    header, rows = details[0], {row[0]: row for row in details[1:]}
    for generator, values in generators.items():
        row = dict(zip(header, rows[generator]))
        assert row["ACC@cal"] == f"{100 * values['acc_cal']:.1f}"
        assert row["TPR@1%FPR"] == f"{100 * values['tpr_at_fpr1']:.1f}"
        assert row["AP"] == f"{100 * values['ap']:.1f}" + ("*" if generator in tied else "")
    calibration = metrics["calibration"]
    assert f"threshold logit {calibration['threshold_logit']:.4g}" in html
    for note in metrics["notes"]:
        assert note.replace("'", "&#39;") in html
    # the reliability diagram's legend is the ECE of the suite's images pooled, computed here by hand from the
    # scores with scikit-learn's bins (15 equal-width), and says that it is the pooled one (the tables give the
    # mean over generators, another number)
    from sklearn.calibration import calibration_curve

    scores = pd.read_parquet(folder / "scores.parquet")
    probs = torch.tensor(scores["logit"].to_numpy(), dtype=torch.float64).sigmoid().numpy()
    share, mean_prob = calibration_curve(scores["label"], probs, n_bins=15, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 16)[1:-1], probs), minlength=15)
    ece = float(np.sum(counts[counts > 0] * np.abs(share - mean_prob)) / len(probs))
    alt = re.search(r'alt="Reliability diagrams, one per detector: ([^"]*)"', html).group(1)
    assert f"mine: pooled ECE {100 * ece:.1f}%" in alt, (ece, alt)


# ------------------------------------------------------------------------ messages say what is done (item 9)


def test_demo_fallback_names_the_given_weights_not_the_bundled_ones(tmp_path, capsys, demo_data_root):
    weights = saturated_lfm(tmp_path / "mine.pth")
    out = tmp_path / "results"
    assert main(["run", "--detector", "lfm", "--weights", str(weights), "--suite", "all", "--data-root",
                 str(demo_data_root), "--limit", "1", "--output", str(out), "--workers", "0"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "running the demo suites" in first and "bundled demo weights" not in first
    assert f"with the weights given by --weights ({weights})" in first
    (folder,) = (out / "runs").iterdir()
    info = json.loads((folder / "run.json").read_text())
    assert info["weights"]["path"] == str(weights) and info["note"].startswith(first[:60])


def test_calibration_on_synthetic_demo_val_for_other_images_warns_beside_the_number(tmp_path, capsys, demo_data_root):
    suite = write_suite(tmp_path / "mine", {"a": 3}, size=(32, 32))
    out = tmp_path / "results"
    assert main(["run", "--detector", "lfm", "--weights", "demo", "--suite", str(suite), "--data-root",
                 str(demo_data_root), "--calibrate-on", "demo-val", "--limit", "3", "--output", str(out),
                 "--workers", "0"]) == 0
    captured = capsys.readouterr()
    assert "calibration on another domain" in captured.err
    sentence = next(line for line in captured.out.splitlines() if line.startswith("calibrated threshold"))
    assert "WARNING: calibration on another domain: the calibration set (demo-val)" in sentence
    (folder,) = (out / "runs").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert any(note.startswith("calibration on another domain") for note in metrics["notes"])
    assert metrics["calibration"]["note"].startswith("calibration on another domain")
    # the same set for the demo suites themselves is the same domain: no note
    assert main(["run", "--detector", "lfm", "--weights", "demo", "--suite", "demo-gan", "--data-root",
                 str(demo_data_root), "--calibrate-on", "demo-val", "--limit", "3", "--output", str(out),
                 "--workers", "0", "--json"]) == 0
    assert "another domain" not in capsys.readouterr().err
