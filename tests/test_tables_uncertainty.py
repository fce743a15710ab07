"""`bench table --ci / --compare / --spread`: intervals of reproduced cells (read from metrics.json or computed
from an older run's scores.parquet), verdicts of reported values against them, spread over generators, and
LaTeX that still compiles; and a run folder from before intervals existed reads with intervals on demand."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.commands import table as table_command
from bench.engine.results import read_run
from bench.engine.runner import metrics_for
from bench.engine.uncertainty import UncertaintyOptions, bootstrap_generator, metrics_with_intervals
from bench.outputs import reported

REPO = Path(__file__).resolve().parents[1]
FORENSYNTHS = ["progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "deepfake"]
RIGHT = {"progan": 180, "biggan": 182, "gaugan": 190}
"""Images right per class (of 200): ACC 90.0, 91.0 and 95.0; the others 196 (98.0)."""


def scores_frame(rng) -> pd.DataFrame:
    frames = []
    for generator in FORENSYNTHS:
        right = RIGHT.get(generator, 196)
        labels = np.r_[np.zeros(200, int), np.ones(200, int)]
        sign = np.where(labels == 1, 1.0, -1.0) * np.where(np.arange(400) % 200 < right, 1.0, -1.0)
        logits = sign * rng.uniform(0.2, 4.0, 400)
        frames.append(pd.DataFrame({"suite": "forensynths", "generator": generator, "label": labels,
                                    "path": [f"{generator}/{'1_fake' if y else '0_real'}/{i}.png"
                                             for i, y in enumerate(labels)],
                                    "logit": logits, "prob": 1 / (1 + np.exp(-logits))}))
    return pd.concat(frames, ignore_index=True)


def write_scored_run(root: Path, run_id: str = "r1") -> tuple[Path, pd.DataFrame]:
    """A finished lfm run on forensynths whose metrics.json has no intervals (as before they existed)."""
    scores = scores_frame(np.random.default_rng(0))
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    metrics = metrics_for(scores, ["forensynths"], {"forensynths": FORENSYNTHS}, prob_precision="float64")
    info = {"run_id": run_id, "status": "finished", "detector": "lfm", "display_name": "LFM",
            "reported_method": "LFM", "weights": {"name": "lfm:official", "sha256": "ab" * 32, "path": "/w.pth"},
            "suites": ["forensynths"], "finished_at": "2026-12-01T00:00:00+00:00", "protocol_choice": "paper"}
    (folder / "run.json").write_text(json.dumps(info))
    (folder / "metrics.json").write_text(json.dumps(metrics, default=float).replace("NaN", "null"))
    scores.to_parquet(folder / "scores.parquet")
    return folder, scores


def run_table(capsys, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="bench table")
    table_command.add_arguments(parser)
    code = table_command.run(parser.parse_args(list(argv)))
    return code, capsys.readouterr().out


def reproduced_cells(text: str) -> tuple[list[str], list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| *"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0].strip("*")] = cells[1:]
    return rows["LFM (official weights, reproduced)"], rows["Δ vs LFM (ours)"]


def expected_interval(scores, generator, metric="acc", options=None):
    rows = scores[scores["generator"] == generator]
    options = options or UncertaintyOptions()
    boot = bootstrap_generator(rows["label"].to_numpy(), rows["logit"].to_numpy(), options,
                               f"forensynths/{generator}", prob_precision="float64")
    entry = boot.entries(options)[metric]
    return 100 * entry["low"], 100 * entry["high"]


def test_compare_marks_reported_values_inside_above_and_below_the_reproduced_interval(tmp_path, capsys):
    root = tmp_path / "results"
    _, scores = write_scored_run(root)
    # the construction, checked with exact binomial intervals: LFM's reported biggan 91.2 lies inside the
    # interval of 364/400 right, gaugan's 88.3 below that of 380/400, progan's 99.8 above that of 360/400
    for right, reported_value, where in ((364, 91.2, "inside"), (380, 88.3, "below"), (360, 99.8, "above")):
        ci = stats.binomtest(right, 400).proportion_ci(0.95, "exact")
        assert where == ("inside" if ci.low <= reported_value / 100 <= ci.high else
                         "below" if reported_value / 100 < ci.low else "above")
    code, out = run_table(capsys, "--suite", "forensynths", "--compare", "--results", str(root))
    assert code == 0
    values, deltas = reproduced_cells(out)
    column = {g: 2 * i for i, g in enumerate(FORENSYNTHS)}
    assert deltas[column["biggan"]] == "-0.2 ✓"
    low, high = expected_interval(scores, "gaugan")
    assert deltas[column["gaugan"]] == f"+6.7 ↓{(low - 88.3) / (high - low):.1f}"
    low, high = expected_interval(scores, "progan")
    assert deltas[column["progan"]] == f"-9.8 ↑{(99.8 - high) / (high - low):.1f}"
    assert values[column["progan"]] == "90.0"  # without --ci the values print alone
    assert "interval: a check mark when inside" in out


@pytest.mark.parametrize("style", ["pm", "brackets"])
def test_ci_prints_each_reproduced_interval_in_one_style(tmp_path, capsys, style):
    root = tmp_path / "results"
    _, scores = write_scored_run(root)
    code, out = run_table(capsys, "--suite", "forensynths", "--ci", "--ci-style", style, "--results", str(root))
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("| *LFM (official weights, reproduced)*"))
    cells = [c.strip() for c in line.strip().strip("|").split(" | ")][1:]
    low, high = expected_interval(scores, "biggan")
    expected = f"91.0 ± {(high - low) / 2:.1f}" if style == "pm" else f"91.0 [{low:.1f}, {high:.1f}]"
    assert cells[2 * FORENSYNTHS.index("biggan")] == expected
    # the Mean pair's interval is the suite mean's: every generator resampled independently
    metrics = metrics_with_intervals(json.loads((root / "runs" / "r1" / "metrics.json").read_text()),
                                     lambda: scores, UncertaintyOptions())
    mean = metrics["suites"]["forensynths"]["mean"]["intervals"]["acc"]
    assert cells[16].endswith(f" ± {50 * (mean['high'] - mean['low']):.1f}" if style == "pm"
                              else f" [{100 * mean['low']:.1f}, {100 * mean['high']:.1f}]")
    assert "95% percentile bootstrap" in out
    assert "| LFM (ours) | 99.8 |" in out  # reported rows have no intervals


def test_stored_intervals_are_read_and_other_options_recompute(tmp_path, capsys):
    root = tmp_path / "results"
    folder, scores = write_scored_run(root)
    metrics = json.loads((folder / "metrics.json").read_text())
    stored = metrics_with_intervals(metrics, lambda: scores, UncertaintyOptions())
    stored["suites"]["forensynths"]["generators"]["biggan"]["intervals"]["acc"] = {"low": 0.5, "high": 0.6}
    (folder / "metrics.json").write_text(json.dumps(stored))
    _, out = run_table(capsys, "--suite", "forensynths", "--ci", "--ci-style", "brackets", "--results", str(root))
    assert "91.0 [50.0, 60.0]" in out  # read from metrics.json, not recomputed
    _, out = run_table(capsys, "--suite", "forensynths", "--ci", "--ci-style", "brackets", "--ci-level", "0.9",
                       "--results", str(root))
    low, high = expected_interval(scores, "biggan", options=UncertaintyOptions(level=0.9))
    assert f"91.0 [{low:.1f}, {high:.1f}]" in out and "90% percentile" in out


def test_spread_gives_sd_over_generators_and_the_worst_one(tmp_path, capsys):
    root = tmp_path / "results"
    write_scored_run(root)
    code, out = run_table(capsys, "--suite", "forensynths", "--spread", "--results", str(root))
    assert code == 0
    paper = {r.generator: r for r in reported.load_rows("forensynths") if r.method == "LFM"}
    acc = [paper[g].acc for g in FORENSYNTHS]
    line = next(line for line in out.splitlines() if line.startswith("| LFM (ours)"))
    cells = [c.strip().replace("**", "") for c in line.strip().strip("|").split(" | ")]
    assert cells[-4] == f"{np.std(acc):.1f}"
    assert cells[-2] == "88.3 (GauGAN)"
    line = next(line for line in out.splitlines() if line.startswith("| *LFM (official weights, reproduced)*"))
    cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
    ours = [90.0, 98.0, 98.0, 91.0, 98.0, 98.0, 95.0, 98.0]
    assert cells[-4] == f"{np.std(ours):.1f}" and cells[-2] == "90.0 (ProGAN)"


def test_bad_interval_options_exit_2_before_reading(tmp_path, capsys):
    from bench.cli import main

    assert main(["table", "--ci", "--ci-resamples", "10", "--results", str(tmp_path / "none")]) == 2
    assert "at least 100" in capsys.readouterr().err
    assert main(["table", "--ci", "--paper"]) == 2


def test_a_run_folder_from_before_intervals_reads_with_intervals_computed_on_demand():
    """tests/fixtures/pre_intervals_run was written by the code before this change (lfm:demo on demo-gan,
    12 real and 12 fake images per generator): it has no intervals, and reading it computes them."""
    fixture = REPO / "tests" / "fixtures" / "pre_intervals_run"
    run = read_run(fixture)
    assert "uncertainty" not in run.metrics and "intervals" not in run.metrics["mean"]
    before = (fixture / "metrics.json").read_bytes()
    metrics = metrics_with_intervals(run.metrics, lambda: run.scores)
    assert metrics["uncertainty"]["resamples"] == 2000
    generators = metrics["suites"]["demo-gan"]["generators"]
    for name, block in generators.items():
        rows = run.scores[run.scores["generator"] == name]
        boot = bootstrap_generator(rows["label"].to_numpy(), rows["logit"].to_numpy(), UncertaintyOptions(),
                                   f"demo-gan/{name}", prob_precision="float32")
        assert block["intervals"] == boot.entries(UncertaintyOptions())
        assert block["acc"] == run.metrics["suites"]["demo-gan"]["generators"][name]["acc"]  # values unchanged
    assert metrics["mean"]["intervals"]["acc"]["low"] is not None
    assert (fixture / "metrics.json").read_bytes() == before  # reading changes nothing on disk


def test_latex_with_intervals_verdicts_and_spread_compiles(tmp_path):
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex is not on PATH")
    from bench.outputs.tables import build_table, render, reproduced_models

    root = tmp_path / "results"
    write_scored_run(root)
    models = reproduced_models(root, intervals=UncertaintyOptions())
    tables = [build_table("forensynths", models, compare=True, ci=style, spread=True) for style in ("pm", "brackets")]
    body = []
    for index, table in enumerate(tables):
        text = render(table, "latex")
        assert "$\\surd$" in text and "$\\uparrow$" in text and "$\\downarrow$" in text
        (tmp_path / f"t{index}.tex").write_text(text, encoding="utf-8")
        body.append(f"\\input{{t{index}.tex}}\n\\clearpage")
    (tmp_path / "doc.tex").write_text("\n".join([r"\documentclass{article}", r"\usepackage{booktabs}",
                                                 r"\usepackage{graphicx}", r"\begin{document}", *body,
                                                 r"\end{document}", ""]), encoding="utf-8")
    result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:]


def test_report_shows_intervals_and_calibration_quality_of_an_old_run(tmp_path):
    """bench report on the pre-intervals fixture: the intervals beside the values and the calibration quality
    are computed on demand from its scores, and the numbers are metrics.json's / scikit-learn's."""
    from browser_support import parse_page
    from sklearn.metrics import brier_score_loss

    from bench.cli import main

    fixture = REPO / "tests" / "fixtures" / "pre_intervals_run"
    out = tmp_path / "report.html"
    assert main(["report", str(fixture), "--output", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    page = parse_page(html)
    run = read_run(fixture)
    metrics = metrics_with_intervals(run.metrics, lambda: run.scores)
    entry = metrics["suites"]["demo-gan"]["generators"]["nearest-conv"]["intervals"]["acc"]
    table = next(t for t in page.tables if t[0][0] == "generator")
    row = next(r for r in table if r[0] == "nearest-conv")
    shown = f"[{100 * entry['low']:.1f}, {100 * entry['high']:.1f}]"
    assert row[1] == "62.5" and f'data-ci="{shown}" title="confidence interval {shown}">62.5<' in html
    quality = next(t for t in page.tables if t[0][0] == "LFM" and "Brier" in t[0])
    rows = run.scores[run.scores["generator"] == "nearest-conv"]
    brier = brier_score_loss(rows["label"], 1 / (1 + np.exp(-rows["logit"].to_numpy())))
    assert next(r for r in quality if r[0] == "nearest-conv")[quality[0].index("Brier")] == f"{brier:.3f}"
    assert "Reliability diagrams, one per detector" in html and "whiskers" in html


def test_bench_check_shows_whether_a_moved_value_left_its_interval():
    from bench.analyses.regression import CheckOutcome, compare_metrics, render_differences

    baseline = {"tolerance": 0.1, "expected": {"s": {"g": {"acc": 0.90, "ap": 0.95}}}}
    fresh = {"suites": {"s": {"generators": {"g": {"acc": 0.92, "ap": 0.99, "intervals": {
        "acc": {"low": 0.89, "high": 0.95}, "ap": {"low": 0.97, "high": 1.0}}}}, "mean": {}}}}
    differences, compared = compare_metrics(baseline, fresh)
    assert compared == 2 and [d.interval for d in differences] == [(0.89, 0.95), (0.97, 1.0)]
    text = render_differences(CheckOutcome(None, "regression", differences=differences))
    assert "[89.00, 95.00] expected inside" in text and "[97.00, 100.00] expected outside" in text
