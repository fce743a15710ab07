"""`bench report`: tables that say what the scores say, paper values where they exist, one file that a
real browser renders completely (headless Chromium; skipped with the reason when none is installed)."""

from __future__ import annotations

import base64
import csv
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser_support import find_browser, parse_page, probe_page, screenshot
from PIL import Image
from sklearn.metrics import average_precision_score
from tests_support import write_suite

from bench.cli import main
from bench.engine.metrics import compute_metrics, mean_metrics

PAPER_FORENSYNTHS = ["progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "deepfake"]


def make_run(folder: Path, detector: str, suite: str, generators: list[str], seed: int, n: int = 40,
             reported_method: str | None = None, skipped: list[tuple[str, str]] = (), status="finished") -> Path:
    """A run folder as `bench run` lays it out, with scores drawn at random (fakes score higher)."""
    rng = np.random.default_rng(seed)
    rows = []
    for generator in generators:
        for label in (0, 1):
            logits = rng.normal(0.8 * (2 * label - 1), 1.5, n)
            for i, logit in enumerate(logits):
                rows.append({"suite": suite, "generator": generator, "path": f"{generator}/{label}_{i}.png",
                             "label": label, "logit": float(logit), "prob": float(1 / (1 + np.exp(-logit)))})
    scores = pd.DataFrame(rows)
    folder.mkdir(parents=True)
    scores.to_parquet(folder / "scores.parquet", index=False)
    per_generator = {}
    for generator in generators:
        part = scores[scores["generator"] == generator]
        per_generator[generator] = compute_metrics(part["label"], part["prob"])
    block = {"generators": per_generator, "mean": mean_metrics(list(per_generator.values()))}
    (folder / "metrics.json").write_text(json.dumps({"suites": {suite: block}, "mean": block["mean"]}))
    info = {"run_id": folder.name, "status": status, "detector": detector, "display_name": detector.upper(),
            "weights": {"name": f"{detector}:test", "sha256": "ab" * 32, "path": "/w.pth"}, "suites": [suite],
            "protocol": {suite: "resize256"}, "device": "cpu", "torch_version": "x", "package_version": "0",
            "n_images": {suite: len(scores)}, "n_skipped": len(skipped)}
    if reported_method:
        info["reported_method"] = reported_method
    (folder / "run.json").write_text(json.dumps(info))
    pd.DataFrame(list(skipped), columns=["path", "reason"]).to_csv(folder / "skipped.csv", index=False)
    return folder


def report(tmp_path: Path, *folders: Path) -> tuple[str, Path]:
    out = tmp_path / "report.html"
    assert main(["report", *map(str, folders), "--output", str(out)]) == 0
    return out.read_text(encoding="utf-8"), out


def table_with_header(page, first_cell: str) -> list[list[str]]:
    return next(t for t in page.tables if t and t[0] and t[0][0] == first_cell)


def expected_pct(scores: pd.DataFrame) -> tuple[str, str]:
    """ACC at prob > 0.5 and scikit-learn's AP, in percent with one decimal: computed here, not by bench."""
    acc = ((scores["prob"] > 0.5).astype(int) == scores["label"]).mean()
    ap = average_precision_score(scores["label"], scores["prob"])
    return f"{100 * acc:.1f}", f"{100 * ap:.1f}"


def test_tables_say_what_the_scores_say(tmp_path):
    a = make_run(tmp_path / "a", "alpha", "suite-x", ["g1", "g2", "g3"], seed=1)
    b = make_run(tmp_path / "b", "beta", "suite-x", ["g1", "g2", "g3"], seed=2)
    html, _ = report(tmp_path, a, b)
    page = parse_page(html)
    per_generator = table_with_header(page, "generator")
    body = {row[0]: row[1:] for row in per_generator[2:]}
    for column, folder in enumerate((a, b)):
        scores = pd.read_parquet(folder / "scores.parquet")
        for generator in ("g1", "g2", "g3"):
            got = body[generator][2 * column: 2 * column + 2]
            assert got == list(expected_pct(scores[scores["generator"] == generator])), (folder, generator)
        per = [expected_pct(scores[scores["generator"] == g]) for g in ("g1", "g2", "g3")]
        mean_acc = np.mean([float(p[0]) for p in per])
        assert abs(float(body["mean"][2 * column]) - mean_acc) <= 0.051  # mean of rounded vs rounded mean
    overview = table_with_header(page, "detector")
    assert [row[0] for row in overview[2:]] == ["ALPHA", "BETA"]
    assert overview[2][1:3] == body["mean"][0:2] and overview[3][1:3] == body["mean"][2:4]


def test_one_self_contained_file(tmp_path):
    a = make_run(tmp_path / "a", "alpha", "suite-x", ["g1", "g2"], seed=1)
    b = make_run(tmp_path / "b", "beta", "suite-y", ["h1"], seed=2)
    html, out = report(tmp_path, a, b)
    page = parse_page(html)
    assert len(page.images) == 7  # bars, ROC, PR for each of the two suites; the reliability diagrams
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        image.load()
        assert min(image.size) > 150
    external = [u for u in page.urls if not u[2].startswith(("data:", "#"))]
    assert external == []
    assert "link" not in page.tags and "script" not in page.tags and "iframe" not in page.tags
    assert out.stat().st_size < 10e6


def _paper_row(method: str, generator: str) -> dict:
    text = resources.files("bench.outputs.reported").joinpath("lfm_bmvc2025.csv").read_text(encoding="utf-8")
    rows = [r for r in csv.DictReader(io.StringIO(text))
            if r["table"] == "forensynths" and r["method"] == method and r["generator"] == generator]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("covered", [8, 7])
def test_paper_values_beside_reproduced(tmp_path, covered):
    generators = PAPER_FORENSYNTHS[:covered]
    run = make_run(tmp_path / "r", "lfm", "forensynths", generators, seed=3, reported_method="LFM")
    html, _ = report(tmp_path, run)
    table = table_with_header(parse_page(html), "generator")
    assert table[1] == ["ACC", "AP", "paper ACC", "paper AP"]
    body = {row[0]: row[1:] for row in table[2:]}
    for generator in generators:
        paper = _paper_row("LFM", generator)
        assert body[generator][2:] == [f"{float(paper['acc']):.1f}", f"{float(paper['ap']):.1f}"]
    mean = _paper_row("LFM", "mean")
    # the paper's mean is over its 8 generators: beside a mean over 7 it would compare different things
    assert body["mean"][2:] == ([f"{float(mean['acc']):.1f}", f"{float(mean['ap']):.1f}"] if covered == 8 else ["–", "–"])


def test_no_paper_columns_without_a_paper_row(tmp_path):
    run = make_run(tmp_path / "r", "mine", "forensynths", PAPER_FORENSYNTHS[:2], seed=3)
    html, _ = report(tmp_path, run)
    table = table_with_header(parse_page(html), "generator")
    assert table[1] == ["ACC", "AP"]


def test_runs_of_one_detector_get_distinct_labels(tmp_path):
    a = make_run(tmp_path / "a", "alpha", "s", ["g"], seed=1)
    b = make_run(tmp_path / "b", "alpha", "s", ["g"], seed=2)
    info = json.loads((b / "run.json").read_text())
    info["weights"]["name"] = "alpha:other"
    (b / "run.json").write_text(json.dumps(info))
    page = parse_page(report(tmp_path, a, b)[0])
    assert [row[0] for row in table_with_header(page, "detector")[2:]] == ["ALPHA (alpha:test)", "ALPHA (alpha:other)"]
    alone = parse_page(report(tmp_path, a)[0])  # without a clash the display name alone
    assert [row[0] for row in table_with_header(alone, "detector")[2:]] == ["ALPHA"]


def test_skipped_files_summarised_by_reason(tmp_path):
    skipped = [("s/g/0_real/a.png", "cannot be decoded: truncated file"),
               ("s/g/0_real/b.png", "cannot be decoded: not an image"),
               ("s/g/1_fake/c.png", "cannot be scored at 9x9: too small for Top-K")]
    run = make_run(tmp_path / "r", "alpha", "s", ["g"], seed=1, skipped=skipped)
    page = parse_page(report(tmp_path, run)[0])
    table = table_with_header(page, "reason")
    assert [(row[0], row[1]) for row in table[1:]] == [("cannot be decoded", "2"), ("cannot be scored", "1")]
    assert "s/g/1_fake/c.png" in table[2][2]


def test_bad_folders_exit_2(tmp_path, capsys):
    good = make_run(tmp_path / "good", "alpha", "s", ["g"], seed=1)
    unfinished = make_run(tmp_path / "unfinished", "alpha", "s", ["g"], seed=1, status="running")
    corrupt = make_run(tmp_path / "corrupt", "alpha", "s", ["g"], seed=1)
    (corrupt / "scores.parquet").write_bytes(b"not parquet")
    empty = tmp_path / "empty"
    empty.mkdir()
    newer = make_run(tmp_path / "newer", "alpha", "s", ["g"], seed=1)
    info = json.loads((newer / "run.json").read_text())
    (newer / "run.json").write_text(json.dumps({**info, "schema_version": 99}))
    for bad, words in [(tmp_path / "missing", "not a folder"), (empty, "lacks run.json"),
                       (unfinished, "not a finished run"), (corrupt, "cannot be read"), (newer, "upgrade")]:
        out = tmp_path / "r.html"
        assert main(["report", str(good), str(bad), "--output", str(out)]) == 2
        assert words in capsys.readouterr().err
        assert not out.exists()


def make_sweep(folder: Path, seed: int = 0) -> tuple[Path, dict]:
    """A sweep folder as `bench sweep` writes it (sweep.json from bench.analyses.sweep's own SweepResult)."""
    from bench.analyses.sweep import SweepResult
    from bench.engine.perturb import parse_sweep

    rng = np.random.default_rng(seed)
    grids = [parse_sweep("jpeg:q=100,70,40"), parse_sweep("blur:sigma=1,2")]
    values = {spec: {d: {"acc": float(rng.uniform(0.5, 1)), "ap": float(rng.uniform(0.5, 1)), "run": None}
                     for d in ("lfm", "npr")}
              for spec in ["clean"] + [level.spec for grid in grids for level in grid.levels]}
    result = SweepResult(["lfm", "npr"], {"lfm": "LFM (lfm:demo)", "npr": "NPR (npr:demo)"}, ["demo"], grids, values)
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps(result.to_dict()))
    return folder, values


def make_explain(folder: Path, n_images: int = 2) -> tuple[Path, list[np.ndarray]]:
    """An explanation folder as `bench explain` writes it: explain.json and a panel.png per image."""
    rng = np.random.default_rng(5)
    panels, records = [], []
    for i in range(n_images):
        pixels = rng.integers(0, 256, (120, 360, 3), dtype=np.uint8)
        (folder / f"img{i}").mkdir(parents=True)
        Image.fromarray(pixels).save(folder / f"img{i}" / "panel.png")
        panels.append(pixels)
        records.append({"path": f"/data/1_fake/img{i}.png", "folder": f"img{i}", "truth": 1, "panel": f"img{i}/panel.png",
                        "detectors": {"lfm": {"prob": 0.25 + 0.5 * i, "pred": i}}, "skipped": {}})
    document = {"method": "gradcam", "protocol": "resize256", "detectors": {"lfm": {}}, "images": records,
                "localisation": {"lfm": {"n_masks": 2, "energy_in_mask": 0.625, "pointing_game": 0.5, "mask_area": 0.25}}}
    (folder / "explain.json").write_text(json.dumps(document))
    return folder, panels


def decode_uri(src: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def test_sweep_folder_gives_robustness_table_and_curves(tmp_path):
    folder, values = make_sweep(tmp_path / "sweep")
    html, _ = report(tmp_path, folder)
    page = parse_page(html)
    assert len(page.images) == 1 and min(decode_uri(page.images[0]).shape[:2]) > 200
    jpeg = table_with_header(page, "detector")
    assert jpeg[0][1:] == ["clean ACC", "clean AP", "100 ACC", "100 AP", "70 ACC", "70 AP", "40 ACC", "40 AP"]
    for row, detector in zip(jpeg[1:], ("lfm", "npr")):
        specs = ["clean", "jpeg:q=100", "jpeg:q=70", "jpeg:q=40"]
        assert row[1:] == [f"{100 * values[s][detector][m]:.1f}" for s in specs for m in ("acc", "ap")]
    assert "Robustness" in html


def test_explain_folder_gives_gradcam_panels(tmp_path):
    folder, panels = make_explain(tmp_path / "explain")
    html, _ = report(tmp_path, folder)
    page = parse_page(html)
    assert len(page.images) == 2
    for src, pixels in zip(page.images, panels):
        assert np.array_equal(decode_uri(src), pixels)  # the panel itself, losslessly
    assert "img1.png (true: fake) - lfm: p(fake) 0.75" in html
    localisation = table_with_header(page, "detector")
    assert localisation[1] == ["lfm", "2", "62.5", "50.0", "25.0"]


def test_figure_folder_embedded_and_downscaled(tmp_path):
    folder = tmp_path / "embed"
    folder.mkdir()
    Image.fromarray(np.full((900, 3200, 3), 90, dtype=np.uint8)).save(folder / "tsne_lfm.png")
    html, _ = report(tmp_path, folder)
    page = parse_page(html)
    assert "Embeddings (t-SNE): embed" in html
    assert decode_uri(page.images[0]).shape[:2] == (450, 1600)


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory) -> list[Path]:
    """Two detectors' run folders written by `bench run` itself, on a tiny folder suite."""
    root = tmp_path_factory.mktemp("report-runs")
    suite = write_suite(root / "tiny", {"gen_a": 3, "gen_b": 3}, size=(64, 64))
    args = ["run", "--detector", "lfm,npr", "--suite", str(suite), "--weights", "demo", "--workers", "0",
            "--output", str(root / "results"), "--json"]
    assert main(args) == 0
    return sorted((root / "results" / "runs").iterdir())


@pytest.mark.slow
def test_renders_in_a_real_browser(tmp_path, real_runs):
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium/Chrome on PATH (.ci/run installs Debian's chromium; `apt-get install chromium`)")
    sweep, _ = make_sweep(tmp_path / "sweep")
    explain, _ = make_explain(tmp_path / "explain")
    html, out = report(tmp_path, *real_runs, sweep, explain)
    page = parse_page(html)
    probe = probe_page(browser, out, tmp_path)
    assert probe["broken"] == []
    assert probe["images"] == len(page.images) == 3 + 1 + 1 + 2  # bars, ROC, PR; reliability; robustness; two panels
    # overview, per generator, a detail and a calibration-quality table per run, two robustness tables, localisation
    assert probe["tables"] == len(page.tables) == 9
    assert probe["rows"] >= 10
    assert probe["smallest_rendered"] > 200  # images are laid out at a readable size, not collapsed
    shot = np.asarray(Image.open(screenshot(browser, out, tmp_path / "shot.png", tmp_path)).convert("L"), dtype=float)
    assert shot.shape[0] >= 2000
    # non-blank all the way down: every 400-pixel band of the page holds text or figures
    for top in range(0, 2000, 400):
        band = shot[top:top + 400]
        assert (band < 200).mean() > 0.005 and band.std() > 10, f"band at {top}px looks blank"
