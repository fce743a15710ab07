"""A results store that stops taking writes mid-run (full disk, read-only): exit 2 with a message that
names the path, run.json marked failed, finished work kept, and a rerun that resumes (issue 17)."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pandas as pd
import pytest
from tests_support import random_lfm_weights, write_suite

import bench.engine.decode
import bench.engine.runner
import bench.engine.store
from bench.cli import main


@pytest.fixture
def weights(tmp_path) -> Path:
    return random_lfm_weights(tmp_path / "weights.pth", seed=5)


def args_for(suite: Path, weights: Path, results: Path) -> list[str]:
    return ["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(weights), "--output", str(results),
            "--workers", "0", "--json"]


def full_disk(path, frame):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_while_writing_the_run_folder(tmp_path, weights, monkeypatch, capsys):
    suite = write_suite(tmp_path / "suite", {"gen": 3}) / "gen"
    results = tmp_path / "results"
    monkeypatch.setattr(bench.engine.runner, "atomic_write_parquet", full_disk)  # the run folder's scores.parquet
    assert main(args_for(suite, weights, results)) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and str(results / "runs") in err and "Traceback" not in err
    (folder,) = (results / "runs").iterdir()
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "failed" and "No space left" in info["error"]
    # the scores were finished before the run folder failed: they are in the cache, and a rerun reuses them
    assert list((results / "cache").glob("*/scores.parquet"))
    monkeypatch.undo()
    decodes = []
    original = bench.engine.decode.decode_image
    monkeypatch.setattr(bench.engine.decode, "decode_image", lambda *a, **k: decodes.append(1) or original(*a, **k))
    assert main(args_for(suite, weights, results)) == 0
    assert decodes == []
    assert len(pd.read_parquet(next((results / "runs").glob("*/scores.parquet")))) == 6


def test_full_disk_while_scoring_is_exit_2_and_keeps_finished_parts(tmp_path, weights, monkeypatch, capsys):
    suite = write_suite(tmp_path / "suite", {"gen": 6}) / "gen"
    results = tmp_path / "results"
    monkeypatch.setenv("BENCH_PART_EVERY", "4")
    real_write = bench.engine.store.atomic_write_parquet
    writes = []

    def fails_after_one_part(path, frame):
        writes.append(path)
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, frame)

    monkeypatch.setattr(bench.engine.store, "atomic_write_parquet", fails_after_one_part)
    assert main(args_for(suite, weights, results)) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and str(results / "cache") in err and "Traceback" not in err
    assert len(list((results / "cache").glob("*/part-*.parquet"))) == 1  # the finished part is kept
    monkeypatch.setattr(bench.engine.store, "atomic_write_parquet", real_write)
    assert main(args_for(suite, weights, results)) == 0
