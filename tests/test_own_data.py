"""Own data as a suite (issue 22, item 4): the shared-reals layout (`0_real/` + `1_fake/<generator>/`) and
a `labels.csv` list, read by every verb through bench.engine.suites' layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score
from tests_support import random_lfm_weights

from bench.cli import main
from bench.engine.suites import discover, layout_of, resolve_suites
from bench.errors import BenchError


def write_image(path: Path, seed: int, size=(32, 32), upsampled: bool = False, fmt: str = "PNG") -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    if upsampled:
        pixels = pixels[::2, ::2].repeat(2, 0).repeat(2, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, fmt)
    return path


def shared_reals_folder(root: Path, n_real=4, generators=("gen-b", "gen-a"), n_fake=3) -> Path:
    for i in range(n_real):
        write_image(root / "0_real" / f"r{i}.png", i)
    for g, name in enumerate(generators):
        for i in range(n_fake):
            write_image(root / "1_fake" / name / f"f{i}.png", 100 * (g + 1) + i, upsampled=True)
    return root


@pytest.fixture
def random_lfm(tmp_path) -> Path:
    """A randomly initialised LFM, saved: the layout tests need a fixed model, not a trained one."""
    return random_lfm_weights(tmp_path / "random_lfm.pth", seed=0)


# ------------------------------------------------------------------------------------ shared reals


def test_shared_reals_layout_gives_one_generator_per_fake_folder(tmp_path):
    root = shared_reals_folder(tmp_path / "wild")
    (resolved,) = resolve_suites(str(root), tmp_path)
    assert layout_of(resolved.root, resolved.suite).name == "shared-reals"
    found = discover(resolved.root, resolved.suite)
    assert [g.name for g in found] == ["gen-b", "gen-a"] or [g.name for g in found] == ["gen-a", "gen-b"]
    reals = sorted(p.name for p in (root / "0_real").iterdir())
    for g in found:
        assert sorted(p.name for p in g.real) == reals  # every generator sees the whole pool
        assert sorted(p.parent.name for p in g.fake) == [g.name] * 3 and g.shared_reals
        assert list(g.items()) == [(p, 0) for p in g.real] + [(p, 1) for p in g.fake]


def test_categories_under_both_label_folders_stay_one_generator(tmp_path):
    root = tmp_path / "cats"
    for label in ("0_real", "1_fake"):
        for category in ("car", "cat"):
            write_image(root / label / category / "x.png", hash((label, category)) % 1000)
    (g,) = discover(root)
    assert g.name == "cats" and len(g.real) == 2 and len(g.fake) == 2 and not g.shared_reals


def test_loose_fakes_beside_generator_folders_are_refused(tmp_path):
    root = shared_reals_folder(tmp_path / "wild")
    write_image(root / "1_fake" / "loose.png", 7)
    with pytest.raises(BenchError, match="loose.png.*generator folder"):
        discover(root)


def test_shared_reals_run_scores_each_generator_against_the_pool(tmp_path, random_lfm, capsys):
    root = shared_reals_folder(tmp_path / "wild", n_real=5, n_fake=4)
    out = tmp_path / "results"
    assert main(["run", "--detector", "lfm", "--weights", str(random_lfm), "--suite", str(root),
                 "--output", str(out), "--workers", "0", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["lfm"]["suites"]["wild"]
    assert sorted(metrics["generators"]) == ["gen-a", "gen-b"]
    (folder,) = (out / "runs").iterdir()
    scores = pd.read_parquet(folder / "scores.parquet")
    for name, m in metrics["generators"].items():
        rows = scores[scores["generator"] == name]
        assert (m["n_real"], m["n_fake"]) == (5, 4)
        assert sorted(rows.loc[rows["label"] == 0, "path"]) == [f"0_real/r{i}.png" for i in range(5)]
        # independent: scikit-learn on the exact logits of the pool and this generator's fakes
        assert m["auc"] == pytest.approx(roc_auc_score(rows["label"], rows["logit"]))
    # the pool is counted once in the suite's mean, and a note says it is shared
    assert (metrics["mean"]["n_real"], metrics["mean"]["n_fake"]) == (5, 8)
    assert any("shared by several generators" in note for note in metrics["mean"]["notes"])
    # the printed table names the protocol the run recorded for the folder (an own folder: the paper's resize)
    info = json.loads((folder / "run.json").read_text())
    assert info["protocol"] == {"wild": "resize256"}
    assert info["n_images"] == {"wild": 5 + 8} and len(scores) == 2 * 5 + 8  # images, not rows
    assert main(["report", str(folder), "--output", str(tmp_path / "report.html")]) == 0  # files agree
    capsys.readouterr()
    assert main(["list", "runs", "--output", str(out), "--json"]) == 0
    assert [run["n_images"] for run in json.loads(capsys.readouterr().out)] == [13]
    assert main(["run", "--detector", "lfm", "--weights", str(random_lfm), "--suite", str(root),
                 "--output", str(out), "--workers", "0"]) == 0
    assert "### wild  (protocol resize256)\n" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- labels.csv


def labels_folder(root: Path) -> Path:
    write_image(root / "photos" / "a.jpg", 1, fmt="JPEG")
    write_image(root / "photos" / "b.jpg", 2, fmt="JPEG")
    write_image(root / "photos" / "own.jpg", 3, fmt="JPEG")
    write_image(root / "made" / "x.png", 4, upsampled=True)
    write_image(root / "made" / "y.png", 5, upsampled=True)
    write_image(root / "made" / "z.png", 6, upsampled=True)
    return root


def test_labels_csv_with_generators_shares_unassigned_reals(tmp_path):
    root = labels_folder(tmp_path / "mine")
    (root / "labels.csv").write_text(
        "path,label,generator\nphotos/a.jpg,0,\nphotos/b.jpg,real,\nphotos/own.jpg,0,sd\n"
        "made/x.png,1,sd\nmade/y.png,FAKE,gan\nmade/z.png,1,\n")
    (resolved,) = resolve_suites(str(root / "labels.csv"), tmp_path)
    assert resolved.suite.name == "mine" and resolved.root == root.absolute()
    assert layout_of(resolved.root, resolved.suite).name == "labels-csv"
    found = {g.name: g for g in discover(resolved.root, resolved.suite)}
    assert list(found) == ["sd", "gan", "mine"]  # first appearance; unassigned fakes form the suite's own
    names = {name: ([p.name for p in g.real], [p.name for p in g.fake]) for name, g in found.items()}
    assert names == {"sd": (["a.jpg", "b.jpg", "own.jpg"], ["x.png"]), "gan": (["a.jpg", "b.jpg"], ["y.png"]),
                     "mine": (["a.jpg", "b.jpg"], ["z.png"])}


def test_labels_csv_without_header_or_generators_is_one_generator(tmp_path):
    root = labels_folder(tmp_path / "mine")
    (root / "test.csv").write_text("photos/a.jpg,0\n\n# a comment\nmade/x.png,1\n")
    (resolved,) = resolve_suites(str(root / "test.csv"), tmp_path)
    (g,) = discover(resolved.root, resolved.suite)
    assert resolved.suite.name == "test" and g.name == "test"
    assert [p.name for p in g.real] == ["a.jpg"] and [p.name for p in g.fake] == ["x.png"]


@pytest.mark.parametrize("row, problem", [
    ("photos/a.jpg,maybe", "line 3: label 'maybe'"),
    ("../outside.png,1", "line 3: ../outside.png is outside"),
    ("photos/missing.jpg,0", "line 3: photos/missing.jpg: no such file"),
    ("photos/a.jpg,0", "line 3: photos/a.jpg is listed again (first on line 2)"),
    (",1", "line 3: no path"),
])
def test_bad_rows_are_exit_2_naming_file_and_line(tmp_path, capsys, row, problem):
    root = labels_folder(tmp_path / "mine")
    write_image(tmp_path / "outside.png", 9)
    listing = root / "labels.csv"
    listing.write_text(f"path,label\nphotos/a.jpg,0\n{row}\nmade/x.png,1\n")
    for verb in (["run", "--detector", "lfm"], ["audit"], ["data", "check"]):
        assert main([*verb, "--suite", str(listing), "--data-root", str(tmp_path)]) == 2, verb
        err = capsys.readouterr().err
        assert str(listing) in err and problem in err, (verb, err)


def test_absolute_path_outside_the_root_is_refused(tmp_path):
    root = labels_folder(tmp_path / "mine")
    elsewhere = write_image(tmp_path / "elsewhere.png", 1)
    (root / "labels.csv").write_text(f"{elsewhere},1\nphotos/a.jpg,0\n")
    with pytest.raises(BenchError, match="line 1: .*elsewhere.png is outside"):
        discover(root, resolve_suites(str(root / "labels.csv"), tmp_path)[0].suite)


def test_labels_csv_runs_audits_and_checks_like_a_folder(tmp_path, random_lfm, capsys):
    root = labels_folder(tmp_path / "mine")
    listing = root / "labels.csv"
    listing.write_text("path,label,generator\nphotos/a.jpg,0,\nphotos/b.jpg,0,\nmade/x.png,1,sd\n"
                       "made/y.png,1,sd\nmade/z.png,1,gan\n")
    out = tmp_path / "results"
    assert main(["run", "--detector", "lfm", "--weights", str(random_lfm), "--suite", str(listing),
                 "--output", str(out), "--workers", "0", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["lfm"]["suites"]["mine"]
    assert list(metrics["generators"]) == ["sd", "gan"]
    scores = pd.read_parquet(next((out / "runs").iterdir()) / "scores.parquet")
    sd = scores[scores["generator"] == "sd"]
    assert sorted(sd["path"]) == ["made/x.png", "made/y.png", "photos/a.jpg", "photos/b.jpg"]
    assert metrics["generators"]["sd"]["ap"] == pytest.approx(
        average_precision_score(sd["label"], torch.sigmoid(torch.tensor(sd["logit"].to_numpy(), dtype=torch.float32))))
    assert main(["audit", "--suite", str(listing), "--json"]) == 0
    (audit,) = json.loads(capsys.readouterr().out)
    assert [g["name"] for g in audit["generators"]] == ["sd", "gan"]
    assert audit["generators"][0]["real"]["formats"] == {"JPEG": 1.0}
    assert main(["data", "check", "--suite", str(listing)]) == 0
    assert "sd" in capsys.readouterr().out
