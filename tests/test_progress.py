"""Progress with an ETA on a terminal and a one-line summary at the end (issue 22, item 8); `bench profile`
says what it times and how long it expects, and its memory figure is what its label says."""

from __future__ import annotations

import io
import re
import sys
import time

import pytest
from tests_support import write_suite

from bench.analyses import profile
from bench.analyses.profile import planned_calls, profile_detector, time_calls
from bench.cli import main
from detectors import get_detector


class Terminal(io.StringIO):
    """stderr as a terminal: tqdm draws its bars only there (disable=None)."""

    def isatty(self) -> bool:
        return True


def stderr_as(monkeypatch, stream: io.StringIO) -> io.StringIO:
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def bar_frames(text: str, unit: str = "img", eta: bool = True) -> list[tuple[str, int, int]]:
    """(description, n, total) of every frame of a tqdm bar counting `unit` that shows the time left
    (`desc: 40%|####  | 4/10 [00:01<00:02, 3.1img/s]`); `eta=False`: also the first frame, drawn before the
    first step, when the time left is not known yet (`<?`; a quick bar may show no other)."""
    left = r"(?:\d\d:\d\d|\?)" if not eta else r"\d\d:\d\d"
    frame = re.compile(r"([^\r\n]*?): +\d+%\|[^|]*\| (\d+)/(\d+) \[\d\d:\d\d<" + left + ", "
                       rf" *(?:[\d.]+{unit}/s|\?{unit}/s|[\d.]+s/{unit})")
    frames = [(m.group(1).strip(), int(m.group(2)), int(m.group(3))) for m in frame.finditer(text)]
    return frames


RUN = ["run", "--detector", "lfm,lfm-gap", "--weights", "demo", "--workers", "0", "--batch-size", "2"]


def test_run_shows_one_bar_with_an_eta_over_every_image_and_a_summary(tmp_path, monkeypatch, capsys):
    suite = write_suite(tmp_path / "mine", {"a": 3, "b": 2}, size=(32, 32))
    terminal = stderr_as(monkeypatch, Terminal())
    assert main([*RUN, "--suite", str(suite), "--output", str(tmp_path / "r")]) == 0
    scoring = [f for f in bar_frames(terminal.getvalue()) if f[0].startswith("scoring lfm, lfm-gap")]
    # one bar over the 10 images (2 generators x 2 classes x 3 or 2), decoded once for both detectors,
    # counting up to the end; batches of 2 make several frames
    assert {total for _, _, total in scoring} == {10} and scoring[-1][1] == 10 and len(scoring) >= 3
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"done: 20 image scores from 2 detector run\(s\) on mine \(20 scored now, 0 from the cache\) "
                        r"in [\d.]+ s on cpu; results in 2 run folders under .*r/runs", last), last

    terminal = stderr_as(monkeypatch, Terminal())
    assert main(["run", "--detector", "lfm", "--weights", "demo", "--suite", str(suite), "--output",
                 str(tmp_path / "r"), "--workers", "0"]) == 0
    assert "(0 scored now, 10 from the cache)" in capsys.readouterr().out
    assert not [f for f in bar_frames(terminal.getvalue()) if f[0].startswith("scoring")]  # nothing to score


def test_run_draws_no_bar_with_quiet_or_off_a_terminal(tmp_path, monkeypatch, capsys):
    suite = write_suite(tmp_path / "mine", {"a": 2}, size=(32, 32))
    terminal = stderr_as(monkeypatch, Terminal())
    assert main([*RUN[:2], "lfm", *RUN[3:], "-q", "--suite", str(suite), "--output", str(tmp_path / "q")]) == 0
    assert "\r" not in terminal.getvalue() and "img/s" not in terminal.getvalue()
    assert "done: 4 image scores" in capsys.readouterr().out  # the summary is the result: still on stdout

    log = stderr_as(monkeypatch, io.StringIO())  # a file or a pipe, not a terminal
    assert main([*RUN[:2], "lfm", *RUN[3:], "--fresh", "--suite", str(suite), "--output", str(tmp_path / "q")]) == 0
    assert "\r" not in log.getvalue() and "img/s" not in log.getvalue()
    assert "(4 scored now, 0 from the cache)" in capsys.readouterr().out


def test_predict_and_explain_show_bars_and_summaries(tmp_path, monkeypatch, capsys):
    suite = write_suite(tmp_path / "mine", {"a": 2}, size=(64, 64))  # LFM's top-16 pooling needs a 4x4 map
    terminal = stderr_as(monkeypatch, Terminal())
    assert main(["predict", "--detector", "lfm", "--weights", "demo", "--batch-size", "1", str(suite)]) == 0
    frames = [f for f in bar_frames(terminal.getvalue()) if f[0] == "scoring with lfm"]
    assert {total for _, _, total in frames} == {4} and frames[-1][1] == 4
    assert re.search(r"done: 4 of 4 files scored \(0 skipped\) with lfm \(lfm:demo\) in [\d.]+ s", terminal.getvalue())
    assert "done:" not in capsys.readouterr().out  # stdout keeps the table alone

    terminal = stderr_as(monkeypatch, Terminal())
    assert main(["explain", "--detector", "lfm", "--weights", "demo", "--protocol", "native",
                 str(suite / "a" / "1_fake"), "--output", str(tmp_path / "x")]) == 0
    frames = [f for f in bar_frames(terminal.getvalue()) if f[0].startswith("explaining (gradcam, lfm)")]
    assert {total for _, _, total in frames} == {2} and frames[-1][1] == 2
    assert re.search(rf"done: 2 of 2 images explained by 1 detector\(s\) in [\d.]+ s; wrote their folders and "
                     rf"explain.json under {re.escape(str(tmp_path / 'x'))}", capsys.readouterr().out)


class Recorder:
    """A stand-in for a tqdm bar that records every total it was given and counts its updates."""

    def __init__(self) -> None:
        self.totals, self.n = [], 0

    @property
    def total(self):
        return self.totals[-1] if self.totals else None

    @total.setter
    def total(self, value) -> None:
        self.totals.append(value)

    def update(self, n: int) -> None:
        self.n += n

    def refresh(self) -> None:
        pass


def test_profile_timing_estimates_its_calls_from_the_first(monkeypatch):
    # by hand: timed calls stop at max_seconds of them (ceil(0.2 / 0.05) = 4), never below min_repeats
    assert planned_calls(0.05, warmup=1, repeats=10, max_seconds=0.2, min_repeats=3) == 1 + 4
    assert planned_calls(10.0, warmup=2, repeats=10, max_seconds=15, min_repeats=3) == 2 + 3
    assert planned_calls(0.001, warmup=2, repeats=10, max_seconds=15, min_repeats=3) == 2 + 10
    monkeypatch.setattr(profile, "ANNOUNCE_AFTER_SECONDS", 0.0)
    bar, said = Recorder(), []
    timing = time_calls(lambda: time.sleep(0.05), "cpu", warmup=1, repeats=10, max_seconds=0.2, min_repeats=3,
                        bar=bar, say=said.append)
    assert 4 <= bar.totals[0] <= 6  # set after the first call from its duration (sleep overshoots a little)
    assert bar.n == 1 + len(timing.seconds) == bar.totals[-1]  # every call counted; the bar ends full
    [estimate] = said
    match = re.fullmatch(r"  one call takes ([\d.]+) s: about (\d+) s more \((\d+) calls\)", estimate)
    assert match and int(match.group(3)) == bar.totals[0] - 1

    # a slow first call (compilation, caches) plans too few calls: the bar's total follows what ran
    durations = iter([0.2] + [0.0] * 20)
    bar = Recorder()
    timing = time_calls(lambda: time.sleep(next(durations)), "cpu", warmup=1, repeats=10, max_seconds=0.2,
                        min_repeats=3, bar=bar)
    assert bar.totals[0] == 1 + 3 and len(timing.seconds) == 10 and bar.n == bar.totals[-1] == 11


@pytest.mark.slow  # a ResNet-18 built twice and a fresh Python process: about 6 s alone, 14 s at load 6
def test_profile_says_what_it_times_and_its_memory_is_what_its_label_says(tmp_path):
    """On a CPU the peak is the resident set of a fresh process scoring one batch: at least the weights
    (the old figure, the growth over a batch measured after warm-up calls in the profiling process, was a
    fraction of the weights: 54 MB for a ViT-L), with the batch's own share reported apart."""
    said = []
    result = profile_detector("timm:resnet18", "cpu", batch_size=2, input_size=64, warmup=1, repeats=1,
                              max_seconds=1, progress=said.append)
    model = get_detector("timm:resnet18").build()
    weights_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20  # 44.6 MB
    settings = result["settings"]
    assert result["peak_memory_mb"] == pytest.approx(settings["resident_before_batch_mb"] + settings["activations_mb"])
    assert settings["resident_before_batch_mb"] > weights_mb and settings["activations_mb"] > 0
    assert "VmHWM" in settings["memory_reading"] and "fresh Python process" in settings["memory"]
    assert any(text.startswith("timm:resnet18: timing batch 1 on cpu (1 warm-up + up to 1 timed calls") for text in said)
    assert any(text.startswith("timm:resnet18: peak memory of one batch 2 in a fresh process") for text in said)


def test_data_check_and_audit_show_bars_unless_quiet_and_end_with_a_summary(tmp_path, monkeypatch, capsys):
    suite = write_suite(tmp_path / "mine", {"a": 3, "b": 2}, size=(32, 32))
    terminal = stderr_as(monkeypatch, Terminal())
    assert main(["data", "check", "--suite", str(suite), "--workers", "1"]) == 0
    assert {total for desc, _, total in bar_frames(terminal.getvalue(), "file", eta=False) if desc == "checking mine"} == {10}
    assert re.search(r"summary: 1 of 1 suites usable \(checked in [\d.]+ s; nothing written\)", capsys.readouterr().out)
    terminal = stderr_as(monkeypatch, Terminal())
    assert main(["audit", "--suite", str(suite), "--workers", "1"]) == 0
    assert {total for desc, _, total in bar_frames(terminal.getvalue(), "file", eta=False) if desc == "audit mine"} == {10}
    assert re.search(r"done: 10 files of 1 suite\(s\) and 0 run\(s\) audited in [\d.]+ s$", capsys.readouterr().out.strip())

    for verb in (["data", "check"], ["audit"]):
        terminal = stderr_as(monkeypatch, Terminal())
        assert main([*verb, "-q", "--suite", str(suite), "--workers", "1"]) == 0
        assert "\r" not in terminal.getvalue() and "file/s" not in terminal.getvalue(), verb


@pytest.mark.slow  # a sweep of two levels, a report on its runs and an embedding: about 30 s on 2 busy cores
def test_sweep_report_and_embed_show_bars_and_summaries(tmp_path, monkeypatch, capsys):
    suite = write_suite(tmp_path / "mine", {"a": 2}, size=(64, 64))
    results = tmp_path / "r"
    terminal = stderr_as(monkeypatch, Terminal())
    assert main(["sweep", "--detector", "lfm", "--weights", "demo", "--suite", str(suite), "--perturb", "jpeg:q=70",
                 "--output", str(results), "--workers", "0"]) == 0
    frames = [f for f in bar_frames(terminal.getvalue(), "generator", eta=False) if f[0] == "sweep"]
    assert {total for _, _, total in frames} == {2} and frames[-1][1] == 2  # clean and q=70, one generator each
    # each level's scoring bar counts that level's 4 images
    assert {total for desc, _, total in bar_frames(terminal.getvalue(), eta=False) if desc == "scoring lfm"} == {4}
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(r"done: 2 levels x 1 detector\(s\) on mine, 8 image scores \(8 scored now, 0 from the cache\) "
                        rf"in [\d.]+ s; sweep folder {re.escape(str(results))}/sweeps/.*", last), last

    runs = sorted(str(p) for p in (results / "runs").iterdir())
    terminal = stderr_as(monkeypatch, Terminal())
    assert main(["report", *runs, "--output", str(tmp_path / "report.html")]) == 0
    assert {total for desc, _, total in bar_frames(terminal.getvalue(), "folder", eta=False) if desc == "report: reading"} == {2}
    assert re.search(r"done: 2 folder\(s\) reported in [\d.]+ s", capsys.readouterr().out)

    terminal = stderr_as(monkeypatch, Terminal())
    assert main(["embed", "--detector", "lfm", "--weights", "demo", "--suite", str(suite), "--results", str(results),
                 "--output", str(tmp_path / "e"), "--workers", "0"]) == 0
    assert {total for desc, _, total in bar_frames(terminal.getvalue(), "panel", eta=False) if desc == "t-SNE and separation"} == {1}
    assert re.search(r"done: 4 image embeddings \(1 detector\(s\) x 1 generator\(s\)\) in [\d.]+ s .*under "
                     + re.escape(str(tmp_path / "e")), capsys.readouterr().out)
