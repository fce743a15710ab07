"""`bench run` with bad files and faults (issue 17): tiny images skipped with a reason, non-finite logits
an error that caches nothing, content-keyed reuse, an empty or misspelt suite exit 2, and two processes
on one results folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from tests_support import random_lfm_weights, write_suite

from bench.cli import main
from detectors import export_state_dict, get_detector

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def weights(tmp_path) -> Path:
    return random_lfm_weights(tmp_path / "weights.pth", seed=3)


def run_args(suite: Path, weights: Path, results: Path) -> list[str]:
    return ["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(weights), "--output", str(results),
            "--workers", "0", "--json"]


def scores_of(results: Path) -> pd.DataFrame:
    [folder] = sorted((results / "runs").iterdir())[-1:]
    return pd.read_parquet(folder / "scores.parquet")


def test_a_native_image_too_small_for_the_model_is_skipped_not_fatal(tmp_path, weights, capsys):
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 2}, size=(48, 48))  # native size
    tiny = suite / "AttGAN" / "1_fake" / "tiny.png"
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tiny)
    assert main(run_args(suite, weights, tmp_path / "r")) == 0
    [folder] = list((tmp_path / "r" / "runs").iterdir())
    skipped = pd.read_csv(folder / "skipped.csv")
    assert list(skipped["path"]) == ["gangen/AttGAN/1_fake/tiny.png"]
    assert skipped["reason"][0].startswith("too small for the model (16x16")
    assert len(pd.read_parquet(folder / "scores.parquet")) == 4


def test_a_same_size_content_change_is_scored_again(tmp_path, weights, capsys):
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 2}, size=(48, 48))
    image = suite / "AttGAN" / "0_real" / "x.bmp"  # BMP: the same dimensions give the same file size
    Image.fromarray(np.full((48, 48, 3), 30, dtype=np.uint8)).save(image)
    assert main(run_args(suite, weights, tmp_path / "r")) == 0
    before = scores_of(tmp_path / "r").set_index("path")["logit"]
    size = image.stat().st_size
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(image)
    assert image.stat().st_size == size
    assert main(run_args(suite, weights, tmp_path / "r")) == 0
    after = scores_of(tmp_path / "r").set_index("path")["logit"]
    assert main(run_args(suite, weights, tmp_path / "clean")) == 0  # what an empty cache gives
    clean = scores_of(tmp_path / "clean").set_index("path")["logit"]
    assert after["AttGAN/0_real/x.bmp"] == clean["AttGAN/0_real/x.bmp"] != before["AttGAN/0_real/x.bmp"]
    pd.testing.assert_series_equal(after, clean)


def test_non_finite_logits_are_an_error_naming_detector_and_weights(tmp_path, capsys):
    detector = get_detector("lfm")
    model = detector.build()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 1 and parameter.numel() == 1:  # the head's bias
                parameter.fill_(float("nan"))
    weights = tmp_path / "nan.pth"
    torch.save(export_state_dict(model, detector), weights)
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 1}, size=(48, 48))
    assert main(run_args(suite, weights, tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert "detector lfm with weights" in err and str(weights) in err and "non-finite logit (nan)" in err
    cached = list((tmp_path / "r" / "cache").rglob("*.parquet"))
    assert cached == []  # nothing non-finite was cached


@pytest.mark.parametrize("layout, message", [("empty", "it is empty"), ("misspelt", "did you mean 0_real?")])
def test_an_empty_or_misspelt_suite_is_exit_2(tmp_path, weights, capsys, layout, message):
    suite = tmp_path / "suite"
    suite.mkdir()
    if layout == "misspelt":
        write_suite(suite, {"g": 1}, size=(48, 48))
        os.rename(suite / "g" / "0_real", suite / "g" / "0_Real")
    assert main(run_args(suite, weights, tmp_path / "r")) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_on_one_output_agree_and_leave_no_parts(tmp_path, weights):
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 6, "BEGAN": 6}, size=(48, 48))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "BENCH_PART_EVERY": "2"}
    reference = None
    for attempt in range(5):
        results = tmp_path / f"r{attempt}"
        args = [sys.executable, "-m", "bench", *run_args(suite, weights, results), "--batch-size", "2"]
        procs = [subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=300) for p in procs]
        for p, (_, err) in zip(procs, outputs):
            assert p.returncode == 0, err[-2000:]
        metrics = [json.loads(out) for out, _ in outputs]
        assert metrics[0] == metrics[1]
        runs = sorted((results / "runs").iterdir())
        a, b = (pd.read_parquet(r / "scores.parquet") for r in runs)
        pd.testing.assert_frame_equal(a, b)
        assert list((results / "cache").rglob("part-*.parquet")) == []
        reference = a if reference is None else reference
        pd.testing.assert_frame_equal(a, reference)


def test_an_output_path_that_is_a_file_is_exit_2_before_any_work(tmp_path, weights, capsys):
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 1}, size=(48, 48))
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    assert main(run_args(suite, weights, blocker)) == 2
    err = capsys.readouterr().err
    assert f"cannot write results under {blocker}" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"


def test_predict_with_non_finite_logits_is_exit_2(tmp_path, capsys):
    detector = get_detector("lfm")
    model = detector.build()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 1 and parameter.numel() == 1:
                parameter.fill_(float("nan"))
    weights = tmp_path / "nan.pth"
    torch.save(export_state_dict(model, detector), weights)
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(image)
    assert main(["predict", str(image), "--detector", "lfm", "--weights", str(weights)]) == 2
    captured = capsys.readouterr()
    assert "non-finite logit (nan)" in captured.err and str(weights) in captured.err and "nan" not in captured.out
