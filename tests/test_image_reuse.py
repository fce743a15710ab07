"""Scores reused by the bytes of each image, whatever the folder, suite, generator or file name (issue 22,
item 7): the image index (bench.engine.store.ImageIndex) beside the unit cache, which stays as it was."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tests_support import write_suite

from bench import api
from bench.engine import runner

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "premove_cache"


@pytest.fixture
def counted(monkeypatch) -> list[str]:
    """The files the one scoring loop is asked to score, by name."""
    seen: list[str] = []
    real = runner.score_images

    def counting(items, *args, **kwargs):
        seen.extend(Path(path).name for path, _ in items)
        return real(items, *args, **kwargs)

    monkeypatch.setattr(runner, "score_images", counting)
    return seen


def evaluate(suite: Path, results: Path, **options):
    return api.evaluate("lfm", str(suite), weights="demo", output=results, progress=False, localisation=False,
                        workers=0, **options)["lfm"].scores


def blake2b(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def logits_by_bytes(scores: pd.DataFrame, root: Path) -> dict[str, float]:
    return {blake2b(root / path): logit for path, logit in zip(scores["path"], scores["logit"])}


def test_a_subset_under_another_path_and_names_is_not_scored_again(tmp_path, counted):
    suite = write_suite(tmp_path / "scored", {"a": 3, "b": 3}, size=(32, 32))
    first = evaluate(suite, tmp_path / "results")
    assert len(counted) == 12
    counted.clear()
    elsewhere = tmp_path / "copy" / "mine"  # another folder, layout, generator and file names; same bytes
    for label in ("0_real", "1_fake"):
        for generator in ("a", "b"):
            source = sorted((suite / generator / label).iterdir())[0]
            target = elsewhere / label / (f"gen-{generator}" if label == "1_fake" else "") / f"{generator}-x.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    again = evaluate(elsewhere, tmp_path / "results")
    assert counted == []  # every image's bytes had been scored: nothing decoded or run again
    assert sorted(again["generator"].unique()) == ["gen-a", "gen-b"]
    expected = logits_by_bytes(first, suite)
    for path, logit in zip(again["path"], again["logit"]):
        assert logit == expected[blake2b(elsewhere / path)]  # the very scores of those bytes
    # one new image and one whose bytes changed are scored; the rest still comes from the index
    write_suite(tmp_path / "new", {"n": 2}, size=(32, 32), seed=9)
    shutil.copyfile(tmp_path / "new" / "n" / "1_fake" / "img_000.png", elsewhere / "1_fake" / "gen-a" / "new.png")
    shutil.copyfile(tmp_path / "new" / "n" / "0_real" / "img_000.png", elsewhere / "0_real" / "a-x.png")
    evaluate(elsewhere, tmp_path / "results", batch_size=1)
    # reuse goes by whole batches (here of one image); the changed real is in both generators' pool:
    # scored for the first, reused for the second
    assert sorted(counted) == ["a-x.png", "new.png"]
    counted.clear()
    shutil.copyfile(tmp_path / "new" / "n" / "1_fake" / "img_001.png", elsewhere / "1_fake" / "gen-b" / "new.png")
    evaluate(elsewhere, tmp_path / "results")  # one batch of 64: gen-b's batch holds a new image, so all of it
    assert sorted(counted) == ["a-x.png", "b-x.png", "b-x.png", "new.png"]


def test_a_shared_pool_of_reals_is_scored_once(tmp_path, counted):
    root = tmp_path / "pool"
    write_suite(tmp_path / "src", {"g": 4}, size=(32, 32))
    shutil.copytree(tmp_path / "src" / "g" / "0_real", root / "0_real")
    for name, files in (("one", ["img_000.png", "img_001.png"]), ("two", ["img_002.png", "img_003.png"])):
        (root / "1_fake" / name).mkdir(parents=True)
        for file in files:
            shutil.copyfile(tmp_path / "src" / "g" / "1_fake" / file, root / "1_fake" / name / file)
    scores = evaluate(root, tmp_path / "results", batch_size=2)
    assert len(scores) == 12 and len(counted) == 8  # 4 reals once (two whole batches), 2 + 2 fakes


def test_a_cache_written_before_the_index_is_indexed_and_reused(tmp_path, counted):
    shutil.copytree(FIXTURE / "cache", tmp_path / "results" / "cache")
    shutil.copytree(FIXTURE / "tiny", tmp_path / "tiny")
    evaluate(tmp_path / "tiny", tmp_path / "results")  # the unit entry, as before; indexed on this first read
    assert counted == []
    subset = tmp_path / "subset"
    (subset / "0_real").mkdir(parents=True)
    (subset / "1_fake").mkdir()
    shutil.copyfile(FIXTURE / "tiny" / "0_real" / "2.png", subset / "0_real" / "two.png")
    shutil.copyfile(FIXTURE / "tiny" / "1_fake" / "3.png", subset / "1_fake" / "three.png")
    scores = evaluate(subset, tmp_path / "results")
    assert counted == []
    (entry,) = [e for e in (FIXTURE / "cache").iterdir()
                if pd.read_json(e / "key.json", typ="series")["detector"] == "lfm"]
    cached = pd.read_parquet(entry / "scores.parquet").set_index("path")["logit"]
    assert scores.set_index("path")["logit"].to_dict() == {"0_real/two.png": cached["0_real/2.png"],
                                                           "1_fake/three.png": cached["1_fake/3.png"]}


def test_under_a_perturbation_only_the_same_relative_path_is_reused(tmp_path, counted):
    suite = write_suite(tmp_path / "scored", {"a": 2}, size=(32, 32))
    evaluate(suite, tmp_path / "results", perturbation="noise:std=5")
    counted.clear()
    moved = tmp_path / "moved" / "scored"  # the same relative paths under another root: the noise is the same
    shutil.copytree(suite, moved)
    evaluate(moved, tmp_path / "results", perturbation="noise:std=5")
    assert counted == []
    renamed = tmp_path / "renamed"  # the noise is seeded by the relative path: another path, another image
    shutil.copytree(suite / "a", renamed)
    evaluate(renamed, tmp_path / "results", perturbation="noise:std=5")
    assert len(counted) == 4


def test_fresh_scores_everything_again(tmp_path, counted):
    suite = write_suite(tmp_path / "scored", {"a": 2}, size=(32, 32))
    evaluate(suite, tmp_path / "results")
    copy = tmp_path / "copy"
    shutil.copytree(suite / "a", copy)
    counted.clear()
    evaluate(copy, tmp_path / "results", fresh=True)
    assert len(counted) == 4
