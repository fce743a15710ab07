"""No image lost, no run finished on nothing (issue 21, Reliability): suites of the same folder name stay
two suites, a paper suite's folders that are not its columns are said to be left out (by `bench run` and
`bench data check` alike), and a suite in which nothing could be scored is exit 2, not "n=0"."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tests_support import random_lfm_weights, write_suite

from bench.cli import main
from bench.engine.suites import ResolvedSuite, distinct_names, suite_for_path


@pytest.fixture
def weights(tmp_path) -> Path:
    """Random LFM weights: these tests are about which images are scored, not about their scores."""
    return random_lfm_weights(tmp_path / "weights.pth", seed=3)


def run(suite: str, weights: Path, results: Path) -> int:
    return main(["run", "--detector", "lfm", "--suite", suite, "--weights", str(weights), "--output", str(results),
                 "--workers", "0", "--json"])


def only_run(results: Path) -> Path:
    [folder] = list((results / "runs").iterdir())
    return folder


def test_two_suite_folders_of_one_name_are_two_suites_and_lose_no_image(tmp_path, weights, capsys):
    first = write_suite(tmp_path / "a" / "good", {"g1": 2}, size=(24, 24))
    second = write_suite(tmp_path / "b" / "good", {"g1": 3}, size=(24, 24), seed=1)
    assert run(f"{first},{second}", weights, tmp_path / "r") == 0
    folder = only_run(tmp_path / "r")
    info = json.loads((folder / "run.json").read_text())
    assert info["suites"] == ["a-good", "b-good"]
    assert info["suite_roots"] == {"a-good": str(first), "b-good": str(second)}
    on_disk = {name: len(list(root.rglob("*.png"))) for name, root in (("a-good", first), ("b-good", second))}
    assert info["n_images"] == on_disk == {"a-good": 4, "b-good": 6}
    scores = pd.read_parquet(folder / "scores.parquet")
    assert scores.groupby("suite").size().to_dict() == on_disk
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["suites"]["b-good"]["generators"]["g1"]["n_real"] == 3


def test_distinct_names_use_as_many_parent_folders_as_it_takes(tmp_path):
    roots = [tmp_path / "x" / "same" / "good", tmp_path / "y" / "same" / "good", tmp_path / "other"]
    resolved = [ResolvedSuite(suite_for_path(root), root, True) for root in roots]
    assert [r.suite.name for r in distinct_names(resolved)] == ["x-same-good", "y-same-good", "other"]
    assert [r.root for r in distinct_names(resolved)] == roots


def test_a_paper_suite_with_none_of_its_columns_is_exit_2_in_run_and_unusable_in_data_check(tmp_path, weights,
                                                                                              capsys):
    suite = write_suite(tmp_path / "GANGen-Detection", {"mygan": 2}, size=(24, 24))
    assert run(str(suite), weights, tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert "gangen: not scoring mygan: not columns of the paper's table" in err
    assert "nothing would be scored" in err
    assert not (tmp_path / "r" / "runs").exists() or not list((tmp_path / "r" / "runs").iterdir())
    assert main(["data", "check", "--suite", str(suite)]) == 2
    out = capsys.readouterr().out
    assert "NOT SCORED by bench run: gangen: not scoring mygan: not columns of the paper's table" in out
    assert "UNUSABLE: bench run would score nothing here" in out


def test_a_paper_suites_extra_folders_are_said_to_be_left_out_and_recorded(tmp_path, weights, capsys):
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 2, "mygan": 2}, size=(48, 48))
    assert run(str(suite), weights, tmp_path / "r") == 0
    err = capsys.readouterr().err
    assert "warning: gangen: not scoring mygan: not columns of the paper's table" in err
    info = json.loads((only_run(tmp_path / "r") / "run.json").read_text())
    assert info["generators_not_scored"] == {"gangen": ["mygan"]} and info["n_images"] == {"gangen": 4}
    assert main(["data", "check", "--suite", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "mygan (not scored)" in out and "evaluated after them" not in out


def test_a_suite_whose_every_file_is_unusable_is_exit_2_and_writes_no_run(tmp_path, weights, capsys):
    for label in ("0_real", "1_fake"):
        folder = tmp_path / "s" / "gen" / label
        folder.mkdir(parents=True)
        (folder / "x.png").write_bytes(b"not an image")
    assert run(str(tmp_path / "s"), weights, tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert "nothing was scored on s, so no result was written" in err
    assert "none of its 2 files could be scored: 2 x not an image (cannot identify image file)" in err
    assert not list((tmp_path / "r" / "runs").iterdir())


def test_a_run_with_one_empty_suite_among_good_ones_is_exit_2_too(tmp_path, weights, capsys):
    good = write_suite(tmp_path / "good", {"gen": 2}, size=(24, 24))
    for label in ("0_real", "1_fake"):
        folder = tmp_path / "bad" / "gen" / label
        folder.mkdir(parents=True)
        (folder / "x.png").write_bytes(b"")
    assert run(f"{good},{tmp_path / 'bad'}", weights, tmp_path / "r") == 2
    assert "nothing was scored on bad" in capsys.readouterr().err
    # no finished work lost: the good suite's unit is a finished cache entry holding every one of its files
    finished = {entry: pd.read_parquet(entry) for entry in (tmp_path / "r" / "cache").glob("*/scores.parquet")}
    [(entry, rows)] = [(e, r) for e, r in finished.items() if r["reason"].isna().all()]
    assert sorted(rows["path"]) == sorted(str(p.relative_to(good)) for p in good.rglob("*.png"))
    stamp = entry.stat().st_mtime_ns
    assert run(str(good), weights, tmp_path / "r") == 0
    assert entry.stat().st_mtime_ns == stamp  # reused as it was, not scored again
    scores = pd.read_parquet(only_run(tmp_path / "r") / "scores.parquet")
    assert sorted(scores["path"]) == sorted(rows["path"]) and list(scores["logit"]) == list(
        rows.set_index("path").loc[scores["path"], "logit"])
