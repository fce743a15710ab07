"""The score cache (issue 17): keyed by the files' contents, one lock per entry shared by processes,
and damaged cache files discarded with a warning and recomputed rather than failing every rerun."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.engine.store import ResultsStore, content_fingerprint, file_digest, file_list_fingerprint

ROWS = pd.DataFrame({
    "suite": ["s", "s", "s"], "generator": ["g", "g", "g"], "path": ["a.png", "b.png", "c.png"],
    "label": [0, 1, 1], "logit": [-1.5, 2.0, math.nan], "prob": [0.18, 0.88, math.nan],
    "reason": [None, None, "truncated image"],
})


def test_the_key_follows_the_bytes_not_the_size(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"\x89PNG one image")
    b.write_bytes(b"\x89PNG two image")
    assert a.stat().st_size == b.stat().st_size
    assert file_digest(a) == hashlib.blake2b(a.read_bytes(), digest_size=16).hexdigest()
    items = [("g/0_real/a.png", 0, a), ("g/1_fake/b.png", 1, b)]
    before = content_fingerprint(items)
    size_key = file_list_fingerprint((rel, label, p.stat().st_size) for rel, label, p in items)
    a.write_bytes(b"\x89PNG new image")  # same size, other content
    assert a.stat().st_size == b.stat().st_size
    assert content_fingerprint(items) != before
    assert file_list_fingerprint((rel, label, p.stat().st_size) for rel, label, p in items) == size_key
    # labels and names are part of it too; equal content gives an equal key
    assert content_fingerprint([("g/0_real/a.png", 1, a), items[1]]) != content_fingerprint(items)
    assert content_fingerprint(items, workers=1) == content_fingerprint(list(items), workers=3)


def test_unreadable_files_have_a_digest_of_their_own(tmp_path):
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    assert file_digest(tmp_path / "dangling.png").startswith("unreadable:")
    (tmp_path / "nowhere.png").write_bytes(b"now it exists")
    assert not file_digest(tmp_path / "dangling.png").startswith("unreadable:")


@pytest.mark.parametrize("damage", ["truncated", "empty", "foreign columns", "nan score"])
def test_a_damaged_part_is_discarded_with_a_warning(tmp_path, caplog, damage):
    entry = ResultsStore(tmp_path).cache_entry("k")
    entry.ensure({"k": 1})
    entry.append_part(ROWS.iloc[:1])
    entry.append_part(ROWS.iloc[1:])
    first = entry.parts()[0]
    if damage == "truncated":
        first.write_bytes(first.read_bytes()[:40])
    elif damage == "empty":
        first.write_bytes(b"")
    elif damage == "foreign columns":
        pd.DataFrame({"x": [1]}).to_parquet(first)
    else:
        ROWS.iloc[:1].assign(logit=math.nan).to_parquet(first)  # a NaN logit with no skip reason
    with caplog.at_level(logging.WARNING, logger="bench.engine.store"):
        rows = entry.read_partial()
    assert list(rows["path"]) == ["b.png", "c.png"]  # the damaged part's image will be scored again
    assert not first.exists() and f"discarding the damaged cache file {first}" in caplog.text
    entry.append_part(ROWS.iloc[:1])  # numbered after the last part left, never over it
    assert [p.name for p in entry.parts()] == ["part-r0-000001.parquet", "part-r0-000002.parquet"]
    assert sorted(entry.read_partial()["path"]) == ["a.png", "b.png", "c.png"]


@pytest.mark.parametrize("damage", ["truncated", "empty", "wrong files", "nan score"])
def test_damaged_finished_scores_are_discarded_and_recomputed(tmp_path, caplog, damage):
    entry = ResultsStore(tmp_path).cache_entry("k")
    entry.ensure({"k": 1})
    entry.finish(ROWS)
    pd.testing.assert_frame_equal(entry.read_complete(list(ROWS["path"])), ROWS)
    if damage == "truncated":
        entry.final_path.write_bytes(entry.final_path.read_bytes()[:100])
    elif damage == "empty":
        entry.final_path.write_bytes(b"")
    elif damage == "nan score":
        ROWS.assign(logit=[math.nan, 2.0, math.nan]).to_parquet(entry.final_path)
    expected = ["a.png", "b.png", "x.png"] if damage == "wrong files" else list(ROWS["path"])
    with caplog.at_level(logging.WARNING, logger="bench.engine.store"):
        assert entry.read_complete(expected) is None
    assert not entry.final_path.exists() and "discarding the damaged cache file" in caplog.text
    assert entry.read_complete(expected) is None  # and now simply missing: no second warning needed


HOLD = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1]); lock.acquire(); print("held", flush=True); time.sleep(float(sys.argv[2]))
"""


def _holder(lock_path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_path), str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_waits_for_the_entry_lock(tmp_path):
    entry = ResultsStore(tmp_path).cache_entry("k")
    holder = _holder(entry.lock_path, 1.5)
    waited = []
    started = time.monotonic()
    with entry.locked(on_wait=waited.append):
        waited_for = time.monotonic() - started
    assert waited == [entry] and waited_for > 1.0  # the lock came only when the holder let it go (1.5 s)
    holder.wait()


def test_a_lock_held_by_a_killed_process_is_free(tmp_path):
    entry = ResultsStore(tmp_path).cache_entry("k")
    holder = _holder(entry.lock_path, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with entry.locked():
        pass
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("where", ["entry folder is a file", "scores are a folder", "a part is a folder",
                                   "the lock is a folder"])
def test_a_cache_entry_of_the_wrong_kind_is_removed_and_recomputed(tmp_path, caplog, where):
    """Issue 21: a folder where the cache keeps a file (or the reverse) was a traceback on the next run."""
    import shutil

    entry = ResultsStore(tmp_path).cache_entry("k")
    entry.ensure({"k": 1})
    entry.finish(ROWS)
    if where == "entry folder is a file":
        shutil.rmtree(entry.folder)
        entry.folder.write_text("not a folder")
    elif where == "scores are a folder":
        entry.final_path.unlink()
        (entry.final_path / "inside").mkdir(parents=True)
    elif where == "a part is a folder":
        entry.final_path.unlink()
        (entry.folder / "part-r0-000000.parquet").mkdir()
    else:
        entry.lock_path.mkdir()
    with caplog.at_level(logging.WARNING, logger="bench.engine.store"):
        cached = entry.read_complete(list(ROWS["path"]))
        with entry.locked():  # what a run does next: take the lock, read the parts, score, finish
            entry.ensure({"k": 1})
            assert entry.read_partial().empty
            entry.append_part(ROWS)
            entry.finish(entry.read_partial())
    if where == "the lock is a folder":  # the scores themselves were fine: reused
        pd.testing.assert_frame_equal(cached, ROWS)
    else:
        assert cached is None
    assert "the score cache keeps a" in caplog.text and "removed it" in caplog.text
    pd.testing.assert_frame_equal(entry.read_complete(list(ROWS["path"])), ROWS)


def test_bench_run_recomputes_an_entry_replaced_by_a_folder(tmp_path, capsys):
    import shutil

    import torch
    from tests_support import write_suite

    from bench.cli import main
    from detectors import export_state_dict, get_detector

    torch.manual_seed(3)
    detector = get_detector("lfm")
    weights = tmp_path / "w.pth"
    torch.save(export_state_dict(detector.build(), detector), weights)
    suite = write_suite(tmp_path / "s", {"gen": 2}, size=(24, 24))
    argv = ["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(weights), "--output",
            str(tmp_path / "r"), "--workers", "0", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    [entry] = [p for p in (tmp_path / "r" / "cache").iterdir() if p.is_dir()]
    shutil.rmtree(entry)
    entry.write_text("in the way")
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == first
    assert f"the score cache keeps a folder at {entry}" in captured.err


INDEXED = pd.DataFrame({"digest": ["d1", "d2"], "path": ["a.png", "b.png"], "logit": [-1.5, 2.0],
                        "reason": [None, None], "cropped": [pd.NA, pd.NA]})


@pytest.mark.parametrize("where", ["image key folder is a file", "a unit's file is a folder"])
def test_an_image_index_entry_of_the_wrong_kind_is_removed_and_rebuilt(tmp_path, caplog, where):
    """Issue 21: the image index (results/image-index/<image key>/<unit key>.parquet) with a file where it
    keeps a folder, or the reverse, was a traceback in mkdir or os.replace after the unit had been scored."""
    import shutil

    index = ResultsStore(tmp_path).image_index("ik")
    index.add("unit", INDEXED)
    if where == "image key folder is a file":
        shutil.rmtree(index.folder)
        index.folder.write_text("not a folder")
    else:
        (index.folder / "unit.parquet").unlink()
        (index.folder / "unit.parquet" / "inside").mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="bench.engine.store"):
        assert index.load().empty and not index.has("unit")  # what a run does: look up, then index
        index.add("unit", INDEXED)
    assert "the image index keeps a" in caplog.text and "removed it" in caplog.text
    assert index.has("unit")
    pd.testing.assert_frame_equal(index.load()[["digest", "path", "logit"]], INDEXED[["digest", "path", "logit"]])


def _scored_suite(tmp_path: Path) -> list[str]:
    import torch
    from tests_support import write_suite

    from detectors import export_state_dict, get_detector

    torch.manual_seed(3)
    detector = get_detector("lfm")
    weights = tmp_path / "w.pth"
    torch.save(export_state_dict(detector.build(), detector), weights)
    suite = write_suite(tmp_path / "s", {"gen": 2}, size=(24, 24))
    return ["--detector", "lfm", "--suite", str(suite), "--weights", str(weights), "--workers", "0", "--json"]


def test_bench_run_rebuilds_an_image_index_folder_replaced_by_a_file(tmp_path, capsys):
    import shutil

    from bench.cli import main

    argv = ["run", *_scored_suite(tmp_path), "--output", str(tmp_path / "r")]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    [entry] = [p for p in (tmp_path / "r" / "cache").iterdir() if p.is_dir()]
    [index] = list((tmp_path / "r" / "image-index").iterdir())
    shutil.rmtree(entry)  # the unit is scored again, and indexed again where a file stands
    shutil.rmtree(index)
    index.write_text("in the way")
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == first
    assert f"the image index keeps a folder at {index}" in captured.err
    assert index.is_dir() and len(list(index.glob("*.parquet"))) == 1


@pytest.mark.parametrize("verb, blocked", [("run", "cache"), ("run", "image-index"), ("embed", "feature-cache"),
                                           ("embed", "")])
def test_a_cache_folder_that_is_a_file_is_exit_2_before_any_work(tmp_path, capsys, verb, blocked):
    """A results root, or one of the cache folders under it, that is a file: a message naming it (the
    option to change) and exit 2, before a model scores anything; not a traceback."""
    from bench.cli import main

    common = _scored_suite(tmp_path)
    results = tmp_path / "r"
    if blocked:
        results.mkdir()
    (results / blocked if blocked else results).write_text("in the way")
    if verb == "run":
        argv = ["run", *common, "--output", str(results)]
    else:
        argv = ["embed", *[a for a in common if a != "--json"], "--results", str(results), "--output",
                str(tmp_path / "e")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    option = "--output" if verb == "run" else "--results"
    assert f"cannot write results under {results / blocked if blocked else results}: it is a file, not a folder; " \
           f"choose another {option}" in err
    assert not list(tmp_path.glob("r/*/*")) and not (tmp_path / "e" / "embed.json").exists()
