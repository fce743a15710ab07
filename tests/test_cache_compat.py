"""A score cache written before a refactoring is reused after it: the cache keys did not move.

`fixtures/premove_cache/cache/` was written by `bench run --detector lfm,npr --weights demo --suite
tests/fixtures/premove_cache/tiny` at commit 09e0c90, the last commit before bench/ was split into
engine/, analyses/ and outputs/ (issue 20). If any field of the key, its serialisation, the model
fingerprint or the file fingerprint changes, this run finds no entry and has to score again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench import api
from bench.engine import runner

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "premove_cache"


def test_cache_written_before_the_move_is_reused(tmp_path, monkeypatch):
    shutil.copytree(FIXTURE / "tiny", tmp_path / "tiny")
    shutil.copytree(FIXTURE / "cache", tmp_path / "results" / "cache")

    def no_scoring(*args, **kwargs):
        raise AssertionError("an image was scored: the pre-move cache entry was not found under its key")

    monkeypatch.setattr(runner, "score_images", no_scoring)
    result = api.evaluate("lfm,npr", str(tmp_path / "tiny"), weights="demo", output=tmp_path / "results",
                          progress=False, localisation=False)
    for entry in sorted((FIXTURE / "cache").iterdir()):
        cached = pd.read_parquet(entry / "scores.parquet")
        detector = pd.read_json(entry / "key.json", typ="series")["detector"]
        scores = result[detector].scores.sort_values("path").reset_index(drop=True)
        assert len(scores) == 8
        assert scores["logit"].tolist() == pytest.approx(cached.sort_values("path")["logit"].tolist(), abs=0)
