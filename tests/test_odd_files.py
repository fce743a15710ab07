"""Files that are not what they seem (issue 21, Reliability): FIFOs, symlinks to devices, headers declaring
decompression bombs, names that are not valid UTF-8. Only regular files are read, everything else is
skipped with a reason, and no verb hangs, crashes or claims a result it did not compute."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image
from tests_support import png_header, random_lfm_weights, run_bench, write_suite

from bench.analyses.audit import inspect_file
from bench.cli import main
from bench.engine.files import file_problem, path_text

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="FIFOs, /dev/zero and byte file names: Linux")


def audit(root, capsys, *extra: str) -> tuple[int, str, str]:
    code = main(["audit", "--suite", str(root), "--workers", "2", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------------- audit


def test_audit_of_unreadable_files_is_exit_2_not_no_shortcut(tmp_path, capsys):
    for label in ("0_real", "1_fake"):
        (tmp_path / "s" / "gen" / label).mkdir(parents=True)
        (tmp_path / "s" / "gen" / label / "x.png").write_bytes(b"not an image")
    code, out, err = audit(tmp_path / "s", capsys)
    assert code == 2
    assert "no shortcut:" not in out + err
    assert "nothing could be audited" in err and "none of its 2 files could be read" in err


def test_audit_of_one_class_is_exit_2_not_no_shortcut(tmp_path, capsys):
    write_suite(tmp_path / "s", {"gen": 3}, size=(24, 24))
    for path in (tmp_path / "s" / "gen" / "1_fake").iterdir():
        path.unlink()
    code, out, err = audit(tmp_path / "s", capsys)
    assert code == 2 and "no shortcut:" not in out + err
    assert "one class only: 3 readable real and 0 readable fake files" in err


def test_audit_of_a_misspelt_label_folder_is_refused_as_bench_run_refuses_it(tmp_path, capsys):
    write_suite(tmp_path / "s", {"gen": 3}, size=(24, 24))
    (tmp_path / "s" / "gen" / "0_real").rename(tmp_path / "s" / "gen" / "0_Real")
    code, out, err = audit(tmp_path / "s", capsys)
    assert code == 2 and "no shortcut:" not in out + err
    assert "gen/0_Real: did you mean 0_real?" in err


def test_audit_says_which_generators_it_could_not_audit(tmp_path, capsys):
    write_suite(tmp_path / "s", {"good": 4, "onlyreal": 3}, size=(24, 24))
    for path in (tmp_path / "s" / "onlyreal" / "1_fake").iterdir():
        path.unlink()
    code, out, _ = audit(tmp_path / "s", capsys)
    assert code == 0
    assert "NOT AUDITED: s/onlyreal: one class only" in out
    assert "(in the 1 of 2 generators audited)" in out


def test_audit_of_two_suites_says_no_shortcut_only_of_the_one_it_audited(tmp_path, capsys):
    write_suite(tmp_path / "a", {"gen": 3}, size=(24, 24))
    write_suite(tmp_path / "b", {"gen": 3}, size=(24, 24))
    for path in (tmp_path / "b" / "gen" / "1_fake").iterdir():
        path.unlink()
    code = main(["audit", "--suite", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 0
    first, second = out.split("## b (")
    assert "no shortcut:" in first and "no shortcut:" not in second
    assert "nothing audited in b: shortcuts were not looked for" in second


@pytest.mark.parametrize("header", [png_header(100_000, 100_000), png_header(15_000, 15_000)],
                         ids=["100000x100000", "15000x15000"])
def test_audit_skips_decompression_bomb_headers_with_the_reason(tmp_path, capsys, header):
    write_suite(tmp_path / "s", {"gen": 3}, size=(24, 24))
    (tmp_path / "s" / "gen" / "1_fake" / "bomb.png").write_bytes(header)
    facts = inspect_file(tmp_path / "s" / "gen" / "1_fake" / "bomb.png", 1, "gen/1_fake/bomb.png")
    assert facts.format == "unreadable" and facts.problem.startswith("decompression bomb (")
    code, out, _ = audit(tmp_path / "s", capsys)
    assert code == 0
    assert "left out of s/gen: 1 unreadable file(s), e.g. gen/1_fake/bomb.png: decompression bomb" in out


@linux_only
def test_file_problem_refuses_fifos_and_devices_without_opening_them(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.png"
    zero.symlink_to("/dev/zero")
    dangling = tmp_path / "gone.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    regular = tmp_path / "ok.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(regular)
    assert file_problem(regular) is None
    assert file_problem(fifo) == "not a regular file (a FIFO, a named pipe); only regular files are read"
    assert file_problem(zero) == ("not a regular file (a symlink to /dev/zero, a character device); "
                                  "only regular files are read")
    assert file_problem(tmp_path) == "not a regular file (a folder); only regular files are read"
    assert file_problem(dangling).startswith("broken symlink")


@linux_only
def test_audit_does_not_hang_on_a_fifo_or_a_link_to_dev_zero(tmp_path):
    write_suite(tmp_path / "s", {"gen": 3}, size=(24, 24))
    os.mkfifo(tmp_path / "s" / "gen" / "1_fake" / "pipe.png")
    (tmp_path / "s" / "gen" / "0_real" / "zero.png").symlink_to("/dev/zero")
    done = run_bench(["audit", "--suite", str(tmp_path / "s"), "--workers", "2", "-q"], timeout=60)
    assert done.returncode == 0, done.stderr
    assert "left out of s/gen: 2 unreadable file(s)" in done.stdout
    assert "not a regular file" in done.stdout


def test_path_text_shows_undecodable_bytes_as_escapes():
    name = os.fsdecode(b"gen/1_fake/bad\xff\xfename.png")
    assert path_text(name) == "gen/1_fake/bad\\xff\\xfename.png"
    assert path_text("gen/ok/caf\u00e9.png") == "gen/ok/caf\u00e9.png"
    path_text(name).encode("utf-8")  # writable as UTF-8 (a parquet column, a hash, a title)


# ------------------------------------------------------------------ run, data check, calibration, embed


@pytest.fixture
def weights(tmp_path):
    """Random LFM weights: these tests are about which files are read, not about the scores."""
    return random_lfm_weights(tmp_path / "weights.pth", seed=3)


def bad_name(folder) -> str:
    """A file name that is not valid UTF-8 (bytes 0xff 0xfe), as Python sees it on Linux."""
    return os.path.join(os.fsdecode(folder), os.fsdecode(b"bad\xff\xfename.png"))


@linux_only
def test_run_scores_a_file_whose_name_is_not_utf8_and_records_it_escaped(tmp_path, weights, capsys):
    import pandas as pd

    suite = write_suite(tmp_path / "s", {"gen": 2}, size=(24, 24))
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(bad_name(suite / "gen" / "1_fake"))
    (suite / "gen" / "0_real" / os.fsdecode(b"broken\xff.png")).write_bytes(b"junk")
    results = tmp_path / "r"
    code = main(["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(weights), "--output", str(results),
                 "--workers", "0", "--json"])
    assert code == 0
    [folder] = (results / "runs").iterdir()
    scores = pd.read_parquet(folder / "scores.parquet")
    assert "gen/1_fake/bad\\xff\\xfename.png" in set(scores["path"])
    assert len(scores) == 5  # 2 + 3 fakes; the broken file is listed, not lost
    skipped = pd.read_csv(folder / "skipped.csv")
    assert list(skipped["path"]) == ["s/gen/0_real/broken\\xff.png"]
    capsys.readouterr()
    # bench audit --run finds the file by the escaped name the run stored (it said "no longer where the run
    # read them" and counted it unreadable)
    assert main(["audit", "--suite", str(suite), "--run", str(folder), "--json"]) == 0
    [audited] = json.loads(capsys.readouterr().out)["runs"]
    assert audited["missing"] == 0
    fakes = {g["group"]: g["n"] for g in audited["groups"] if (g["label"], g["by"]) == ("fake", "format")}
    assert fakes == {"PNG": 3}


@linux_only
def test_run_takes_suite_and_generator_folders_whose_names_are_not_utf8(tmp_path, weights, capsys):
    """A suite or generator is named after its folder: a name that is not valid UTF-8 was a UnicodeEncodeError
    traceback from pyarrow after the first batch was scored. Such names are written with escapes, as paths are."""
    import pandas as pd

    suite = write_suite(tmp_path / os.fsdecode(b"suite\xff"), {os.fsdecode(b"gen\xfe"): 2}, size=(24, 24))
    results = tmp_path / "r"
    assert main(["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(weights), "--output",
                 str(results), "--workers", "0", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["lfm"]
    assert list(metrics["suites"]) == ["suite\\xff"]
    assert list(metrics["suites"]["suite\\xff"]["generators"]) == ["gen\\xfe"]
    [folder] = (results / "runs").iterdir()
    scores = pd.read_parquet(folder / "scores.parquet")
    assert len(scores) == 4 and set(scores["generator"]) == {"gen\\xfe"}
    assert "gen\\xfe/1_fake/img_000.png" in set(scores["path"])
    assert main(["report", str(folder), "--output", str(tmp_path / "r.html")]) == 0


@linux_only
def test_explain_titles_a_file_whose_name_is_not_utf8_with_escapes(tmp_path, weights, capsys):
    import json

    folder = tmp_path / "imgs" / "1_fake"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(bad_name(folder))
    code = main(["explain", str(tmp_path / "imgs"), "--detector", "lfm", "--weights", str(weights),
                 "--output", str(tmp_path / "out"), "--device", "cpu"])
    assert code == 0
    document = json.loads((tmp_path / "out" / "explain.json").read_text())
    [record] = document["images"]
    assert record["path"].endswith("1_fake/bad\\xff\\xfename.png")
    assert (tmp_path / "out" / record["panel"]).is_file()


@linux_only
@pytest.mark.slow  # two child processes scoring a small suite
def test_run_with_calibration_and_data_check_skip_fifos_and_device_links(tmp_path, weights):
    import pandas as pd

    suite = write_suite(tmp_path / "s", {"gen": 3}, size=(24, 24))
    os.mkfifo(suite / "gen" / "1_fake" / "pipe.png")
    (suite / "gen" / "0_real" / "zero.png").symlink_to("/dev/zero")
    calibration = write_suite(tmp_path / "cal", {"gen": 3}, size=(24, 24), seed=1)
    os.mkfifo(calibration / "gen" / "0_real" / "pipe.png")
    results = tmp_path / "r"
    done = run_bench(["run", "--detector", "lfm", "--suite", str(suite), "--calibrate-on", str(calibration),
                      "--weights", str(weights), "--output", str(results), "--workers", "0", "--json", "-q"],
                     timeout=240)
    assert done.returncode == 0, done.stderr
    [folder] = (results / "runs").iterdir()
    skipped = pd.read_csv(folder / "skipped.csv").set_index("path")["reason"].to_dict()
    assert skipped == {
        "s/gen/0_real/zero.png": "not a regular file (a symlink to /dev/zero, a character device); "
                                 "only regular files are read",
        "s/gen/1_fake/pipe.png": "not a regular file (a FIFO, a named pipe); only regular files are read",
    }
    assert len(pd.read_parquet(folder / "scores.parquet")) == 6
    checked = run_bench(["data", "check", "--suite", str(suite)], timeout=120)
    assert checked.returncode == 0, checked.stderr
    assert "gen/1_fake/pipe.png: not a regular file (a FIFO, a named pipe)" in checked.stdout
    assert "gen/0_real/zero.png: not a regular file (a symlink to /dev/zero" in checked.stdout


@linux_only
@pytest.mark.slow  # features and a t-SNE of a small suite
def test_embed_takes_a_file_whose_name_is_not_utf8(tmp_path, weights, capsys):
    suite = write_suite(tmp_path / "s", {"gen": 3}, size=(24, 24))
    Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(bad_name(suite / "gen" / "1_fake"))
    code = main(["embed", "--detector", "lfm", "--weights", str(weights), "--suite", str(suite),
                 "--output", str(tmp_path / "out"), "--results", str(tmp_path / "r"), "--workers", "0", "--json"])
    assert code == 0
    import pandas as pd

    points = pd.read_csv(tmp_path / "out" / "points.csv")
    assert "gen/1_fake/bad\\xff\\xfename.png" in set(points["path"])
