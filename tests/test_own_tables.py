"""Tables for the user's own suites and the demo suites (issue 22, item 5): `bench table --compare` right
after the quick start (the demo fallback), `bench table --suite PATH`, LaTeX for them, and the ties'
star and note in every table."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score
from tests_support import write_suite

from bench.cli import main


def cells(out: str, label_part: str) -> list[str]:
    row = next(line for line in out.splitlines() if line.startswith("| ") and label_part in line)
    return [c.strip().strip("*") for c in row.strip().strip("|").split(" | ")][1:]


@pytest.fixture(scope="module")
def quick_start_results(tmp_path_factory, demo_data_root) -> Path:
    """What the README's quick start leaves: `bench run --suite all` on a machine without the paper's data
    (the demo fallback), here on one image per class and generator."""
    out = tmp_path_factory.mktemp("quick") / "results"
    assert main(["run", "--detector", "lfm", "--suite", "all", "--data-root", str(demo_data_root), "--limit", "2",
                 "--output", str(out), "--workers", "0", "-q", "--json"]) == 0
    return out


def test_compare_after_the_quick_start_shows_the_demo_tables_and_says_why(quick_start_results, capsys):
    capsys.readouterr()
    assert main(["table", "--compare", "--results", str(quick_start_results)]) == 0
    captured = capsys.readouterr()
    assert "no finished run" in captured.err and "covers the paper's suites" in captured.err
    assert "falls back to" in captured.err and "--compare has nothing to subtract" in captured.err
    out = captured.out
    assert "### demo-gan: reproduced results" in out and "### demo-diffusion: reproduced results" in out
    assert "No reported rows" in out
    (folder,) = (quick_start_results / "runs").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())["suites"]
    scores = pd.read_parquet(folder / "scores.parquet")
    for suite in ("demo-gan", "demo-diffusion"):
        section = out.split(f"### {suite}")[1].split("###")[0]
        row = cells(section, "LFM (demo weights, reproduced)")
        generators = list(metrics[suite]["generators"])
        for i, generator in enumerate(generators):
            rows = scores[(scores["suite"] == suite) & (scores["generator"] == generator)]
            probs = torch.tensor(rows["logit"].to_numpy(), dtype=torch.float32).sigmoid().numpy()
            assert row[2 * i + 1] == f"{100 * average_precision_score(rows['label'], probs):.1f}"  # scikit-learn
        assert row[-2:] == [f"{100 * metrics[suite]['mean'][k]:.1f}" for k in ("acc", "ap")]  # the run's own mean
    assert main(["table", "--results", str(quick_start_results), "--format", "latex"]) == 0
    latex = capsys.readouterr().out
    assert latex.count(r"\begin{table*}") == 2 and "% No reported rows" in latex and "% Reproduced: LFM" in latex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex on PATH")
def test_own_suite_latex_compiles(quick_start_results, capsys, tmp_path):
    assert main(["table", "--suite", "demo", "--results", str(quick_start_results), "--format", "latex"]) == 0
    body = capsys.readouterr().out
    doc = tmp_path / "t.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}\\begin{document}"
                   + body + "\\end{document}")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", doc.name], cwd=tmp_path, capture_output=True)
    assert done.returncode == 0, done.stdout[-2000:]


def test_table_for_a_folder_and_a_list_and_unknown_names(tmp_path, capsys):
    suite = write_suite(tmp_path / "wild", {"gen-a": 2, "gen-b": 2}, size=(32, 32))
    listing = suite / "labels.csv"
    listing.write_text("path,label,generator\ngen-a/0_real/img_000.png,0,\ngen-a/1_fake/img_000.png,1,x\n"
                       "gen-b/1_fake/img_001.png,1,y\n")
    out_root = tmp_path / "results"
    for spec in (str(suite), str(listing)):
        assert main(["run", "--detector", "lfm", "--weights", "demo", "--suite", spec, "--output", str(out_root),
                     "--workers", "0", "-q", "--json"]) == 0
    capsys.readouterr()
    assert main(["table", "--suite", str(suite), "--results", str(out_root)]) == 0
    out = capsys.readouterr().out
    assert "### wild: reproduced results" in out and "gen-a ACC" in out and "gen-b AP" in out and "x ACC" not in out
    folder = next(f for f in (out_root / "runs").iterdir() if not json.loads((f / "run.json").read_text())["suite_listings"])
    metrics = json.loads((folder / "metrics.json").read_text())["suites"]["wild"]
    row = cells(out, "LFM (demo weights, reproduced)")
    assert row[:2] == [f"{100 * metrics['generators']['gen-a'][k]:.1f}" for k in ("acc", "ap")]
    # the list suite has the same name (its folder's): told apart by where its files were
    assert main(["table", "--suite", str(listing), "--results", str(out_root), "--compare"]) == 0
    captured = capsys.readouterr()
    assert "x ACC" in captured.out and "gen-a ACC" not in captured.out and "no reported rows to subtract" in captured.err
    assert main(["table", "--suite", "wild", "--results", str(out_root)]) == 0  # a name the runs recorded
    capsys.readouterr()
    assert main(["table", "--suite", "wlid", "--results", str(out_root)]) == 2
    assert "Did you mean: wild" in capsys.readouterr().err
    assert main(["table", "--suite", str(tmp_path), "--results", str(out_root)]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_paper_table_stars_an_ap_that_ties_move(tmp_path, capsys):
    from test_tables import FORENSYNTHS, write_run

    folder = write_run(tmp_path, "20261122-010000-lfm-official-forensynths",
                       {"forensynths": {g: (0.9, 0.8) for g in FORENSYNTHS}})
    metrics = json.loads((folder / "metrics.json").read_text())
    note = "ties: 50 real and 114 fake images share a float32 probability with the other class; AP 80.0 ..."
    metrics["suites"]["forensynths"]["generators"]["progan"]["notes"] = [note]
    metrics["notes"] = [f"forensynths/progan: {note}"]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert main(["table", "--suite", "forensynths", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "LFM (official weights, reproduced)" in line)
    assert row.count("80.0\\*") == 2  # progan's AP and the Mean AP that averages it; the other APs plain
    assert f"LFM (official weights, reproduced): forensynths/progan: {note}" in out
    assert main(["table", "--suite", "forensynths", "--results", str(tmp_path), "--format", "latex"]) == 0
    latex = capsys.readouterr().out
    assert "80.0$^*$" in latex and "$^*$ AP under the paper's float32 sigmoid" in latex
