"""Resuming a unit of work that two detectors share (equal decode specs: one decode of each image feeds
both) after kills that left one detector further than the other: an image counts as finished only when
every detector of the group has its score, so the resumed run decodes exactly the images the one behind
lacks, and each detector ends with the scores an uninterrupted run of it alone gives."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from test_run_resume_cache import Decodes, small_parts
from tests_support import write_suite

from bench.cli import main
from detectors import export_state_dict, get_detector


def random_weights(name: str, seed: int, path):
    torch.manual_seed(seed)
    detector = get_detector(name)
    model = detector.build()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(export_state_dict(model, detector), path)
    return path


def run(suite, detectors, weights, output) -> int:
    return main(["run", "--detector", detectors, "--suite", str(suite), "--weights", weights, "--output",
                 str(output), "--workers", "0", "--batch-size", "4", "-q"])


def scores(output, detector) -> pd.DataFrame:
    import json

    for folder in sorted((output / "runs").iterdir()):
        if json.loads((folder / "run.json").read_text())["detector"] == detector:
            frame = pd.read_parquet(folder / "scores.parquet")
            return frame.sort_values("path", ignore_index=True)[["path", "label", "logit"]]
    raise AssertionError(f"no run of {detector} in {output}")


@pytest.mark.slow
def test_two_detectors_resume_from_the_one_behind(tmp_path, monkeypatch):
    # lfm and lfm-official decode alike (same preprocessing, same smallest side), so they share each decode
    suite = write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 6}, size=(64, 64))  # native size, 12 images
    # one file for both (`--weights` names one for every detector): they share LFM's architecture
    a = b = random_weights("lfm", 5, tmp_path / "lfm.pth")
    all_paths = sorted(str(p) for p in suite.rglob("*.png"))
    small_parts(monkeypatch)  # rows reach part files every 4 images
    output = tmp_path / "results"
    with monkeypatch.context() as patch:
        ahead = Decodes(patch, interrupt_after=8)
        assert run(suite, "lfm", str(a), output) == 130  # lfm has 8 scores
    with monkeypatch.context() as patch:
        behind = Decodes(patch, interrupt_after=4)
        assert run(suite, "lfm-official", str(b), output) == 130  # lfm-official has 4
    assert set(behind.paths) <= set(ahead.paths)
    with monkeypatch.context() as patch:
        resumed = Decodes(patch)
        assert run(suite, "lfm,lfm-official", str(a), output) == 0
    # finished = scored by both = the 4 lfm-official has; the other 8 are decoded once, for both
    assert sorted(resumed.paths) == sorted(set(all_paths) - set(behind.paths))
    # the reference: each detector alone, uninterrupted, in another results folder
    for detector, weights in (("lfm", a), ("lfm-official", b)):
        clean = tmp_path / f"clean-{detector}"
        assert run(suite, detector, str(weights), clean) == 0
        pd.testing.assert_frame_equal(scores(output, detector), scores(clean, detector))
