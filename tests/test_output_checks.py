"""Verbs that write or read result folders say what is wrong instead of a traceback or a wrong reason (issue
21, Reliability): one output check shared by run, report, table, explain and embed; a run folder whose files
disagree is not rendered; the same run twice is shown once; an unreadable run is named by `bench table`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_report import make_run

from bench.cli import main
from bench.engine.results import consistency_problems, read_run

GENERATORS = ["progan", "biggan"]


@pytest.fixture
def run_folder(tmp_path):
    return make_run(tmp_path / "results" / "runs" / "r1", "lfm", "forensynths", GENERATORS, seed=0, n=12)


def writing_under(folder: Path, verb: str, run_folder: Path, results: Path) -> list[str]:
    """The arguments of `verb` with its output under `folder`."""
    return {
        "report": ["report", str(run_folder), "--output", str(folder / "r.html")],
        "table": ["table", "--results", str(results), "--output", str(folder / "t.md")],
        "explain": ["explain", str(run_folder), "--detector", "lfm", "--output", str(folder / "x")],
        "embed": ["embed", "--detector", "lfm", "--suite", "demo", "--output", str(folder / "x")],
    }[verb]


def test_a_consistent_run_has_no_problem(run_folder):
    assert consistency_problems(read_run(run_folder)) == []


def test_report_refuses_a_run_whose_scores_lost_rows(tmp_path, run_folder, capsys):
    scores = pd.read_parquet(run_folder / "scores.parquet")
    kept = scores.drop(scores.index[(scores["generator"] == "biggan") & (scores["label"] == 1)][:7])
    kept.to_parquet(run_folder / "scores.parquet", index=False)
    assert main(["report", str(run_folder), "--output", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "its files disagree, so it is not rendered" in err
    assert "forensynths: run.json counts 48 scored images, scores.parquet holds 41 (41 rows)" in err
    assert "forensynths/biggan: metrics.json has n_fake 12, scores.parquet 5 rows" in err
    assert not (tmp_path / "r.html").exists()


def test_report_refuses_a_run_whose_skipped_list_disagrees(tmp_path, run_folder, capsys):
    info = json.loads((run_folder / "run.json").read_text())
    (run_folder / "run.json").write_text(json.dumps({**info, "n_skipped": 3}))
    assert main(["report", str(run_folder), "--output", str(tmp_path / "r.html")]) == 2
    assert "run.json counts 3 skipped files, skipped.csv lists 0" in capsys.readouterr().err


def test_report_of_the_same_run_twice_shows_it_once(tmp_path, run_folder, capsys):
    alias = tmp_path / "alias"
    alias.symlink_to(run_folder)
    out = tmp_path / "twice.html"
    assert main(["report", str(run_folder), str(alias), "--output", str(out)]) == 0
    assert f"{alias} is given twice (as {run_folder}): shown once" in capsys.readouterr().err
    page = out.read_text()
    # two runs would be told apart by folder name ("LFM (r1)", "LFM (alias)"); one run is just "LFM"
    assert "LFM (r1)" not in page and "(alias)" not in page and str(alias) not in page


@pytest.mark.parametrize("verb", ["report", "table", "explain", "embed"])
def test_an_output_under_a_file_is_exit_2_before_any_work(tmp_path, run_folder, capsys, verb):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    argv = writing_under(blocker, verb, run_folder, tmp_path / "results")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and str(blocker) in err and "Traceback" not in err


def test_report_output_that_is_a_folder_is_exit_2(tmp_path, run_folder, capsys):
    (tmp_path / "out").mkdir()
    assert main(["report", str(run_folder), "--output", str(tmp_path / "out")]) == 2
    assert "is a folder; give a file name for the report" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
@pytest.mark.parametrize("verb", ["report", "table"])
def test_a_read_only_output_folder_is_exit_2(tmp_path, run_folder, capsys, verb):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        argv = (["report", str(run_folder), "--output", str(locked / "r.html")] if verb == "report" else
                ["table", "--results", str(tmp_path / "results"), "--output", str(locked / "t.md")])
        assert main(argv) == 2
        assert "Permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)


def test_table_names_an_unreadable_run_instead_of_saying_there_is_none(tmp_path, run_folder, capsys):
    metrics = run_folder / "metrics.json"
    metrics.write_text(metrics.read_text()[:60])  # truncated
    assert main(["table", "--results", str(tmp_path / "results")]) == 0
    err = capsys.readouterr().err
    assert "no finished runs" not in err
    assert f"1 run folder(s) could not be read and are left out ({run_folder}: cannot read {metrics}" in err


def test_table_still_shows_readable_runs_and_names_the_unreadable_one(tmp_path, run_folder, capsys):
    broken = shutil.copytree(run_folder, run_folder.parent / "r2")
    (broken / "run.json").write_text("{")
    assert main(["table", "--results", str(tmp_path / "results"), "--suite", "forensynths"]) == 0
    captured = capsys.readouterr()
    assert f"could not be read and are left out ({broken}: cannot read {broken / 'run.json'}" in captured.err
    assert "LFM" in captured.out  # the readable run's row


@pytest.mark.parametrize("by", ["folder", "recorded name"])
def test_table_of_an_own_suite_names_the_unreadable_run_instead_of_no_run(tmp_path, capsys, by):
    """`bench table --suite PATH|NAME` whose only run has a truncated metrics.json said "no finished run covers
    it" (or "Unknown suite"), as if it had never been evaluated."""
    from tests_support import write_suite

    folder = write_suite(tmp_path / "mine", {"g": 1}, size=(8, 8))
    run = make_run(tmp_path / "results" / "runs" / "r1", "lfm", "mine", ["g"], seed=0, n=4)
    metrics = run / "metrics.json"
    metrics.write_text(metrics.read_text()[:60])
    suite = str(folder) if by == "folder" else "mine"
    assert main(["table", "--results", str(tmp_path / "results"), "--suite", suite]) == 2
    err = capsys.readouterr().err
    assert f"1 run folder(s) could not be read and are left out ({run}: cannot read {metrics}" in err


def test_table_of_an_own_suite_beside_an_unreadable_run_says_so(tmp_path, capsys):
    good = make_run(tmp_path / "results" / "runs" / "r1", "lfm", "mine", ["g"], seed=0, n=4)
    broken = make_run(tmp_path / "results" / "runs" / "r2", "npr", "mine", ["g"], seed=1, n=4)
    (broken / "run.json").write_text("{")
    assert main(["table", "--results", str(tmp_path / "results"), "--suite", "mine"]) == 0
    captured = capsys.readouterr()
    assert f"could not be read and are left out ({broken}: cannot read {broken / 'run.json'}" in captured.err
    assert "LFM" in captured.out and str(good) not in captured.err


@pytest.mark.parametrize("as_json", [False, True])
def test_list_runs_names_an_unreadable_run_instead_of_listing_none(tmp_path, run_folder, capsys, as_json):
    metrics = run_folder / "metrics.json"
    metrics.write_text(metrics.read_text()[:60])
    assert main(["list", "runs", "--output", str(tmp_path / "results"), *(["--json"] if as_json else [])]) == 0
    captured = capsys.readouterr()
    assert f"warning: 1 run folder(s) could not be read and are left out ({run_folder}: cannot read {metrics}" \
        in captured.err
    if as_json:  # stdout stays machine-readable
        assert json.loads(captured.out) == []


@pytest.mark.parametrize("verb", ["report", "table", "explain", "embed"])
def test_an_output_folder_the_system_refuses_is_exit_2(tmp_path, run_folder, capsys, monkeypatch, verb):
    """The read-only test above as root, where permissions do not bind: the test write that every verb's
    output check makes is refused by the system (EACCES), as it is for a read-only folder."""
    import errno
    import tempfile

    locked = tmp_path / "locked"
    locked.mkdir()
    real_mkstemp = tempfile.mkstemp

    def refusing(*args, dir=None, **kwargs):
        if dir is not None and os.path.realpath(dir).startswith(str(locked)):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refusing)
    argv = writing_under(locked, verb, run_folder, tmp_path / "results")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"under {locked}" in err and "Permission denied" in err and "Traceback" not in err
    assert not [path for path in locked.rglob("*") if path.is_file()]  # nothing written (mkdir is not refused here)


def test_a_sweep_whose_sweeps_folder_is_a_file_is_exit_2_before_scoring(tmp_path, capsys):
    """It was a NotADirectoryError traceback after every level had been scored."""
    from tests_support import write_suite

    suite = write_suite(tmp_path / "s", {"gen": 1}, size=(24, 24))
    results = tmp_path / "r"
    results.mkdir()
    (results / "sweeps").write_text("in the way")
    code = main(["sweep", "--detector", "lfm", "--weights", "demo", "--suite", str(suite), "--output", str(results),
                 "--workers", "0", "--perturb", "noise:std=1"])
    assert code == 2
    assert f"cannot write sweeps under {results / 'sweeps'}: it is a file, not a folder" in capsys.readouterr().err
    assert not list(results.glob("cache/*"))  # refused before any level was scored


@pytest.mark.parametrize("verb", ["train", "profile"])
def test_train_and_profile_check_their_output_before_the_work(tmp_path, capsys, verb):
    """A file where `bench train --output` or `<results>/profile` should be a folder was a FileExistsError
    traceback (train: after loading the data and building the model; profile: after the timing)."""
    from test_train import make_folder

    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    if verb == "train":
        train = make_folder(tmp_path / "data" / "train", 1, 48)
        make_folder(tmp_path / "data" / "val", 1, 48)
        argv = ["train", "--detector", "lfm-k4", "--train-set", str(train), "--resize", "none", "--crop", "40",
                "--epochs", "1", "--batch-size", "2", "--workers", "0", "--output", str(blocker), "--data-root",
                str(tmp_path / "root")]
        where, what = blocker, "the training run"
    else:
        (tmp_path / "r").mkdir()
        (tmp_path / "r" / "profile").write_text("in the way")
        argv = ["profile", "--detector", "npr", "--repeats", "1", "--warmup", "0", "--batch-size", "1",
                "--input-size", "32", "--output", str(tmp_path / "r")]
        where, what = tmp_path / "r" / "profile", "profiles"
    assert main(argv) == 2
    assert f"cannot write {what} under {where}: it is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["audit", "table --ci"])
def test_a_truncated_scores_file_is_exit_2_naming_it(tmp_path, run_folder, capsys, verb):
    """Verbs that read a run's scores.parquet (the audit's breakdown, intervals computed from the scores) gave
    pyarrow's ArrowInvalid traceback on a truncated one."""
    from tests_support import write_suite

    suite = write_suite(tmp_path / "forensynths", {"progan": 1}, size=(8, 8))
    info = json.loads((run_folder / "run.json").read_text())
    (run_folder / "run.json").write_text(json.dumps({**info, "suite_roots": {"forensynths": str(suite)}}))
    scores = run_folder / "scores.parquet"
    scores.write_bytes(scores.read_bytes()[:200])
    argv = (["audit", "--suite", str(suite), "--run", str(run_folder)] if verb == "audit" else
            ["table", "--results", str(tmp_path / "results"), "--suite", "forensynths", "--ci"])
    assert main(argv) == 2
    assert f"cannot read {scores}: " in capsys.readouterr().err
