"""`bench table`: the paper's tables from the package data, reproduced rows from a results store, and
LaTeX that compiles."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.commands import table as table_command
from bench.errors import BenchError, UnknownNameError
from bench.outputs import reported
from bench.outputs.reported import MEAN, TABLE_KEYS
from bench.outputs.tables import build_table, render, reproduced_models

REPO = Path(__file__).resolve().parents[1]
FORENSYNTHS = ["progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "deepfake"]
LFM_SHA = "903036979adb186c6baf48b6214092540161d7b0194d1b7bea5592a072b49317"


def run_table(capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="bench table")
    table_command.add_arguments(parser)
    code = table_command.run(parser.parse_args(list(argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def write_run(root: Path, run_id: str, suites: dict[str, dict[str, tuple[float, float]]], *,
              detector: str = "lfm", display_name: str = "LFM", weights: str | None = "lfm:official",
              sha256: str = LFM_SHA, path: str = "/weights/bs_model.pth", finished_at: str = "2026-11-22T03:31:00+00:00",
              status: str = "finished", perturbation: str | None = None, limit: int | None = None) -> Path:
    """A run folder in the store format of docs/internals.md (run.json + metrics.json)."""
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    info = {
        "run_id": run_id, "status": status, "detector": detector, "display_name": display_name,
        "weights": {"name": weights, "sha256": sha256, "path": path}, "suites": list(suites),
        "data_root": "/tmp/datasets", "protocol": dict.fromkeys(suites, "resize256"),
        "perturbation": perturbation, "truncated_images": "skip", "limit_per_class": limit, "package_version": "0.1.0",
        "git_commit": None, "torch_version": "2.4", "device": "cpu",
        "started_at": finished_at, "finished_at": finished_at if status == "finished" else None,
        "n_images": dict.fromkeys(suites, 16), "n_skipped": 0,
    }
    metrics = {"suites": {}}
    for suite, generators in suites.items():
        per = {g: {"acc": acc, "ap": ap, "r_acc": acc, "f_acc": acc, "auc": ap, "eer": 0.1, "oracle_acc": acc,
                   "n_real": 1, "n_fake": 1} for g, (acc, ap) in generators.items()}
        mean = {k: sum(v[k] for v in per.values()) / len(per) for k in ("acc", "ap")}
        metrics["suites"][suite] = {"generators": per, "mean": mean}
    (folder / "run.json").write_text(json.dumps(info))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def markdown_rows(text: str) -> dict[str, list[str]]:
    """Row label -> cells of the Markdown table(s), with bold/italics markers removed."""
    rows = {}
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("| Method"):
            continue
        cells = [c.strip().replace("**", "") for c in line.strip().strip("|").split(" | ")]
        rows[cells[0].strip("*")] = cells[1:]
    return rows


def paper_cells(table: str, method: str) -> list[str]:
    """What the paper prints for one row, in column order, after the recorded OCR corrections."""
    spec = reported.table_spec(table)
    by_generator = {r.generator: r for r in reported.load_rows(table) if r.method == method}
    flagged = {(i.generator, i.metric) for i in reported.load_inconsistencies(table) if i.method == method}
    cells = []
    for key in [c.key for c in spec.columns] + [MEAN]:
        for metric in ("acc", "ap"):
            mark = "†" if (key, metric) in flagged else ""
            cells.append(f"{getattr(by_generator[key], metric):.1f}{mark}")
    if table == "comparison":
        cost = next(c for c in reported.load_costs() if c.method == method)
        cells += [f"{cost.flops_g:.2f}B", f"{cost.params_m:.2f}M"]
    return cells


# --- the paper's tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("suite,table", [("all", "comparison"), ("forensynths", "forensynths"),
                                         ("gangen", "gangen"), ("diffusionforensics", "diffusionforensics"),
                                         ("ufd", "ufd")])
def test_paper_markdown_reproduces_every_value(capsys, suite, table):
    code, out, _ = run_table(capsys, "--suite", suite, "--paper", "--format", "markdown")
    assert code == 0
    rows = markdown_rows(out)
    spec = reported.table_spec(table)
    references = {r.method: r.reference for r in reported.load_rows(table)}
    assert list(rows) == [f"{m.method} {references[m.method]}" for m in spec.methods]
    for entry in spec.methods:
        assert rows[f"{entry.method} {references[entry.method]}"] == paper_cells(table, entry.method)
    header = next(line for line in out.splitlines() if line.startswith("| Method"))
    headings = [h.removesuffix(" ACC") for h in header.split(" | ")[1::2]]
    assert headings[: len(spec.columns)] == [f"{c.label} {c.reference}".strip() for c in spec.columns]


def test_comparison_table_has_test_sets_mean_flops_params(capsys):
    _, out, _ = run_table(capsys, "--paper")  # --suite all and markdown are the defaults
    header = next(line for line in out.splitlines() if line.startswith("| Method"))
    assert "Test Set 5 [40] AP | Mean ACC | Mean AP | FLOPs | Params |" in header
    lfm = markdown_rows(out)["LFM (ours)"]
    assert lfm[-4:] == ["95.9", "98.6", "1.61B", "0.72M"]


def test_best_is_bold_and_second_underlined():
    latex = render(build_table("forensynths"), "latex")
    lfm = next(line for line in latex.splitlines() if line.startswith("LFM (ours)"))
    npr = next(line for line in latex.splitlines() if line.startswith("NPR [11]"))
    # Mean ACC/AP are the last two cells: LFM 95.5/98.3 best, NPR 92.5/96.1 second
    assert lfm.endswith(r"\textbf{95.5} & \textbf{98.3} \\")
    assert npr.endswith(r"\underline{92.5} & \underline{96.1} \\")
    markdown = render(build_table("forensynths"), "markdown")
    assert "| **95.5** | **98.3** |" in markdown and "| 92.5 | 96.1 |" in markdown
    # lower is better for cost: LFM has the fewest FLOPs and params
    comparison = render(build_table("comparison"), "latex")
    assert r"\textbf{1.61B} & \textbf{0.72M}" in comparison
    assert r"\underline{2.30B} & \underline{1.44M}" in comparison


def test_latex_layout_is_booktabs_with_multicolumn_headers():
    latex = render(build_table("gangen"), "latex")
    for needle in (r"\toprule", r"\midrule", r"\bottomrule", r"\caption{", r"\label{tab:gangen}",
                   r"\begin{tabular}{@{}l" + "c" * 20 + "@{}}"):
        assert needle in latex
    assert latex.count(r"\multicolumn{2}{c}") == 10  # 9 generators + Mean
    assert latex.count(r"\cmidrule(lr)") == 10
    assert r"\multicolumn{2}{c}{CGAN}" in latex and r"\multicolumn{2}{c}{IMGAN}" in latex
    assert "(\\%)" in latex  # the caption's % is escaped
    ufd = render(build_table("ufd"), "latex")
    assert r"G\_100\_10" in ufd  # underscores escaped


def test_latex_and_markdown_agree_on_every_value():
    for key in TABLE_KEYS:
        table = build_table(key)
        latex = render(table, "latex")
        markdown = markdown_rows(render(table, "markdown"))
        for row in table.reported:
            line = next(line for line in latex.splitlines() if line.startswith(row.label + " &"))
            cells = [re.sub(r"\\(textbf|underline)\{(.*)\}", r"\2", c.strip()).replace("$^\\dagger$", "†")
                     for c in line[:-2].split("&")[1:]]
            assert cells == markdown[row.label]


def test_a_legible_printed_number_stays_as_printed_and_is_marked(capsys):
    """Issue 11: LFM's GANGen S3GAN AP is printed 93.5, which breaks its row's mean (99.5); the table shows
    93.5, marks it, and the note gives both readings."""
    _, out, _ = run_table(capsys, "--suite", "gangen", "--paper")
    lfm = markdown_rows(out)["LFM (ours)"]
    s3gan = [c.key for c in reported.table_spec("gangen").columns].index("S3GAN")
    assert lfm[2 * s3gan + 1] == "93.5†"
    assert lfm[2 * s3gan] == "88.4"  # the ACC beside it is not marked
    assert "† LFM, S3GAN AP: 93.5 as printed" in out and "95.5 would fit" in out
    latex = render(build_table("gangen"), "latex")
    assert "93.5$^\\dagger$" in latex and "{\\footnotesize $^\\dagger$" in latex
    # exactly the listed cells are marked, in every table
    for key in TABLE_KEYS:
        body = render(build_table(key), "markdown").split("Notes:")[0]
        assert body.count("†") == len(reported.load_inconsistencies(key)), key


def test_unknown_and_unsupported_suites(capsys):
    with pytest.raises(UnknownNameError, match="Did you mean: gangen"):
        run_table(capsys, "--suite", "gangan", "--paper")
    with pytest.raises(BenchError, match="Diffusion1kStep"):
        run_table(capsys, "--suite", "testset5", "--paper")
    with pytest.raises(BenchError, match="--paper"):
        run_table(capsys, "--paper", "--compare")


def test_groups_render_their_tables_in_test_set_order(capsys):
    _, out, _ = run_table(capsys, "--suite", "gan", "--paper")
    assert out.index("ForenSynths (Test Set 1)") < out.index("GANGen-Detection (Test Set 2)")
    _, out, _ = run_table(capsys, "--suite", "diffusion", "--paper", "--format", "latex")
    assert out.count(r"\begin{table*}") == 2


def test_all_writes_every_table_in_both_formats(tmp_path, capsys):
    code, out, _ = run_table(capsys, "--all", "--paper", "--output", str(tmp_path))
    assert code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"{k}.{ext}" for k in TABLE_KEYS for ext in ("md", "tex"))
    assert out.split() == [str(tmp_path / f"{k}.{ext}") for k in TABLE_KEYS for ext in ("md", "tex")]
    with pytest.raises(BenchError, match="--output"):
        run_table(capsys, "--all", "--paper")  # never overwrite the committed tables by default


def test_committed_paper_tables_are_up_to_date():
    """results/tables/ holds the paper-only tables; regenerate them with
    `bench table --all --paper --output results/tables` after changing the data or the templates."""
    folder = REPO / "results" / "tables"
    for key in TABLE_KEYS:
        table = build_table(key)
        assert (folder / f"{key}.md").read_text(encoding="utf-8") == render(table, "markdown")
        assert (folder / f"{key}.tex").read_text(encoding="utf-8") == render(table, "latex")


# --- reproduced rows from a results store ------------------------------------------------------------


@pytest.fixture
def store(tmp_path) -> Path:
    """A results store with `lfm` runs on a tiny stand-in tree laid out like ForenSynths."""
    root = tmp_path / "results"
    old = {g: (0.5, 0.5) for g in FORENSYNTHS}
    write_run(root, "20261122-010000-lfm-forensynths", {"forensynths": old}, finished_at="2026-11-22T01:00:00+00:00")
    latest = {g: (0.90 + i / 100, 0.95 + i / 200) for i, g in enumerate(FORENSYNTHS)}
    write_run(root, "20261122-020000-lfm-forensynths", {"forensynths": latest},
              finished_at="2026-11-22T02:00:00+00:00")
    # neither an unfinished nor a perturbed run may show up
    write_run(root, "20261122-030000-lfm-running", {"forensynths": old}, status="running",
              finished_at="2026-11-22T03:00:00+00:00")
    write_run(root, "20261122-040000-lfm-jpeg", {"forensynths": old}, perturbation="jpeg:75",
              finished_at="2026-11-22T04:00:00+00:00")
    return root


def test_compare_shows_reproduced_row_beside_reported_with_deltas(store, capsys):
    code, out, _ = run_table(capsys, "--suite", "forensynths", "--compare", "--results", str(store))
    assert code == 0
    rows = markdown_rows(out)
    reproduced = rows["LFM (official weights, reproduced)"]
    expected = []
    for i in range(8):
        expected += [f"{100 * (0.90 + i / 100):.1f}", f"{100 * (0.95 + i / 200):.1f}"]
    mean_acc = sum(100 * (0.90 + i / 100) for i in range(8)) / 8
    mean_ap = sum(100 * (0.95 + i / 200) for i in range(8)) / 8
    expected += [f"{mean_acc:.1f}", f"{mean_ap:.1f}"]
    assert reproduced == expected
    paper = [float(v) for v in paper_cells("forensynths", "LFM")]
    deltas = rows["Δ vs LFM (ours)"]
    assert deltas == [f"{float(r) - p:+.1f}" for r, p in zip(expected, paper, strict=True)]
    assert deltas[0] == "-9.8"  # 90.0 reproduced vs 99.8 reported on ProGAN
    # the reported block is untouched and the runs used are named
    assert rows["LFM (ours)"] == paper_cells("forensynths", "LFM")
    assert "forensynths from run 20261122-020000-lfm-forensynths" in out
    # a run without a recorded precision predates it: its AP came from float64 probabilities
    assert "AP from the exact (float64) order, not the official float32 probabilities" in out
    for ignored in ("010000", "running", "jpeg"):
        assert ignored not in out


def test_sources_say_which_probabilities_ap_came_from(tmp_path, capsys):
    root = tmp_path / "results"
    folder = write_run(root, "r1", {"forensynths": {g: (0.9, 0.95) for g in FORENSYNTHS}})
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "prob_precision": "float32"}))
    _, out, _ = run_table(capsys, "--suite", "forensynths", "--results", str(root))
    assert "forensynths from run r1; AP from float32 probabilities, as the official validate.py" in out


def test_a_reproduced_row_is_compared_only_with_its_own_method(tmp_path, capsys):
    """Issue 11, item 3: an ablation evaluated with LFM's weights is not LFM's row; lfm-official is."""
    root = tmp_path / "results"
    values = {g: (0.9, 0.95) for g in FORENSYNTHS}
    write_run(root, "r1", {"forensynths": values}, detector="lfm-no-rks", display_name="LFM w/o RKS")
    write_run(root, "r2", {"forensynths": values}, detector="lfm-official", display_name="LFM (official code)",
              finished_at="2026-11-22T04:00:00+00:00")
    _, out, _ = run_table(capsys, "--suite", "forensynths", "--compare", "--results", str(root))
    rows = markdown_rows(out)
    assert "LFM w/o RKS (official weights, reproduced)" in rows
    assert "LFM w/o RKS (official weights, reproduced): no reported row of the same method" in out
    deltas = [label for label in rows if label.startswith("Δ vs")]
    assert deltas == ["Δ vs LFM (ours)"]  # one delta row, the lfm-official one
    labels = list(rows)
    assert labels[labels.index("Δ vs LFM (ours)") - 1] == "LFM (official code) (official weights, reproduced)"
    # what run.json records wins over the registry (a detector this installation does not know)
    write_run(root, "r3", {"forensynths": values}, detector="my-npr", display_name="NPR")
    info = json.loads((root / "runs" / "r3" / "run.json").read_text())
    (root / "runs" / "r3" / "run.json").write_text(json.dumps({**info, "reported_method": "NPR"}))
    _, out, _ = run_table(capsys, "--suite", "forensynths", "--compare", "--results", str(root))
    assert "Δ vs NPR [11]" in markdown_rows(out)


def test_reproduced_rows_are_never_ranked_with_the_paper(tmp_path, capsys):
    root = tmp_path / "results"
    write_run(root, "r1", {"forensynths": {g: (1.0, 1.0) for g in FORENSYNTHS}})
    _, with_runs, _ = run_table(capsys, "--suite", "forensynths", "--format", "latex", "--results", str(root))
    _, paper, _ = run_table(capsys, "--suite", "forensynths", "--format", "latex", "--paper")
    reported_lines = [line for line in paper.splitlines() if line.endswith(r"\\") and "[" in line]
    for line in reported_lines:
        assert line in with_runs
    reproduced = next(line for line in with_runs.splitlines() if line.startswith("LFM (official weights"))
    assert r"\textbf" not in reproduced and "100.0" in reproduced
    assert r"\emph{Reproduced with lfm-bench}" in with_runs


def test_missing_generators_print_as_dashes_and_no_partial_mean(tmp_path, capsys):
    root = tmp_path / "results"
    write_run(root, "r1", {"forensynths": {"progan": (0.99, 1.0), "stylegan": (0.9, 0.95)}})
    _, out, _ = run_table(capsys, "--suite", "forensynths", "--results", str(root))
    row = markdown_rows(out)["LFM (official weights, reproduced)"]
    assert "--limit" not in out
    assert row[:4] == ["99.0", "100.0", "90.0", "95.0"]
    assert row[4:] == ["-"] * 14  # six generators and the Mean


def test_comparison_row_uses_38_generators_and_profile(tmp_path, capsys):
    root = tmp_path / "results"
    suites = {}
    for column in reported.table_spec("comparison").columns:
        acc = {"forensynths": 0.9, "gangen": 0.8, "diffusionforensics": 1.0, "ufd": 0.7, "diffusion1kstep": 0.6}
        suites[column.suite] = {g: (acc[column.suite], 1.0) for g in column.generators}
    write_run(root, "r-all", suites)
    profile = root / "profile" / "lfm.json"
    profile.parent.mkdir(parents=True)
    profile.write_text(json.dumps({"detector": "lfm", "params": 725641, "macs": 1_608_900_000, "flops": 3.2e9}))
    code, out, _ = run_table(capsys, "--suite", "all", "--compare", "--results", str(root))
    assert code == 0
    row = markdown_rows(out)["LFM (official weights, reproduced)"]
    mean_acc = (8 * 90 + 9 * 80 + 8 * 100 + 8 * 70 + 5 * 60) / 38  # not the mean of the five set means
    assert row[::2][:5] == ["90.0", "80.0", "100.0", "70.0", "60.0"]
    assert row[10:] == [f"{mean_acc:.1f}", "100.0", "1.61B", "0.73M"]
    assert markdown_rows(out)["Δ vs LFM (ours)"][-2:] == ["+0.00B", "+0.01M"]
    assert "FLOPs and Params from" in out


def test_a_run_missing_a_suite_leaves_its_cells_dashed(tmp_path, capsys):
    root = tmp_path / "results"
    write_run(root, "r1", {"forensynths": {g: (0.9, 1.0) for g in FORENSYNTHS}}, detector="npr",
              display_name="NPR", weights="npr:official", sha256="ab" * 32, limit=5)
    _, out, _ = run_table(capsys, "--suite", "all", "--compare", "--results", str(root))
    assert "forensynths from run r1 (--limit 5 per class: a sample)" in out
    rows = markdown_rows(out)
    assert rows["NPR (official weights, reproduced)"][:2] == ["90.0", "100.0"]
    assert rows["NPR (official weights, reproduced)"][2:] == ["-"] * 12
    assert rows["Δ vs NPR [40]"][:2] == ["-2.5", "+3.9"]


def test_compare_without_runs_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(BenchError, match="nothing to compare"):
        run_table(capsys, "--suite", "forensynths", "--compare", "--results", str(tmp_path))
    code, out, err = run_table(capsys, "--suite", "forensynths", "--results", str(tmp_path))
    assert code == 0 and "reported rows only" in err and "LFM (ours)" in out


def test_output_file_and_folder(store, tmp_path, capsys):
    target = tmp_path / "out" / "fs.tex"
    run_table(capsys, "--suite", "testset1", "--format", "latex", "--compare", "--results", str(store),
              "--output", str(target))
    text = target.read_text()
    assert r"$\Delta$ vs.\ LFM (ours)" in text and "% Reproduced: LFM (official weights, reproduced)" in text
    folder = tmp_path / "tables"
    folder.mkdir()
    run_table(capsys, "--suite", "ufd", "--paper", "--output", str(folder))
    assert (folder / "ufd.md").is_file()


# --- LaTeX compiles ------------------------------------------------------------------------------------


def _require_pdflatex() -> str:
    path = shutil.which("pdflatex")
    if path is None:
        message = ("pdflatex is not on PATH (Debian: apt-get install -y --no-install-recommends "
                   "texlive-latex-recommended)")
        if os.environ.get("BENCH_REQUIRE_SHARED") == "1" or os.environ.get("CI"):
            pytest.fail(message + "; CI must have it")
        pytest.skip(message)
    return path


def _page_count(log: str) -> int:
    match = re.search(r"Output written on .*?\((\d+) pages?", log, re.S)
    assert match, log[-2000:]
    return int(match.group(1))


def test_every_latex_table_compiles_with_pdflatex(tmp_path):
    pdflatex = _require_pdflatex()
    root = tmp_path / "results"
    # a reproduced row whose label needs escaping, to exercise the reproduced and delta rows too
    write_run(root, "r1", {"forensynths": {g: (0.9, 1.0) for g in FORENSYNTHS}}, weights=None,
              path="/ckpt/my_lfm#2 50%.pth", sha256="cd" * 32)
    models = reproduced_models(root)
    assert models[0].label == "LFM (weights my_lfm#2 50%.pth, reproduced)"
    tables = [build_table(key) for key in TABLE_KEYS] + [build_table("forensynths", models, compare=True)]
    body = []
    for index, table in enumerate(tables):
        (tmp_path / f"t{index}.tex").write_text(render(table, "latex"), encoding="utf-8")
        body.append(f"\\input{{t{index}.tex}}\n\\clearpage")
    document = "\n".join([r"\documentclass{article}", r"\usepackage{booktabs}", r"\usepackage{graphicx}",
                          r"\begin{document}", *body, r"\end{document}", ""])
    (tmp_path / "doc.tex").write_text(document, encoding="utf-8")
    result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert _page_count(result.stdout) == len(tables)  # one table per page, none spilling over
    assert (tmp_path / "doc.pdf").stat().st_size > 10_000


def test_cli_dispatches_to_table(capsys):
    from bench.cli import main

    assert main(["table", "--suite", "ufd", "--paper"]) == 0
    assert "| LFM (ours) | 78.6 | 94.7 |" in capsys.readouterr().out
    assert main(["table", "--suite", "nope"]) == 2
    assert "bench table: error: Unknown suite 'nope'" in capsys.readouterr().err


def test_the_reported_numbers_are_cited_from_the_folder_that_holds_them():
    """Tables, their LaTeX comments, the committed results/tables and the report's notes and footer name the
    folder of the transcribed numbers; it moved to bench/outputs/reported (issue 20) and they kept saying
    bench/reported."""
    cited = []
    for path in [*REPO.glob("bench/**/templates/*.j2"), *REPO.glob("results/tables/*")]:
        for match in re.finditer(r"transcribed in\s+(?:<code>)?([\w/.]+?)(?:</code>)?[.\s]", path.read_text()):
            cited.append((path.relative_to(REPO), match.group(1)))
    assert len({str(p) for p, _ in cited if p.parts[0] == "bench"}) == 3  # the Markdown, LaTeX and report templates
    for path, folder in cited:
        assert (REPO / folder).is_dir() and list((REPO / folder).glob("*.csv")), (path, folder)
