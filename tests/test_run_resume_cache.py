"""`bench run` does no work twice and reuses no work it must not: counted decodes.

Every image `bench run` scores is decoded by `bench.engine.decode.decode_image`; with `--workers 0` the decodes
happen in this process, so wrapping that function counts (and names) them exactly.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from tests_support import write_suite

import bench.engine.decode
from bench.cli import main
from detectors import export_state_dict, get_detector

PART_EVERY = 4


@pytest.fixture
def suite(tmp_path):
    # a folder named like GANGen-Detection is scored at native size: small images keep this fast
    return write_suite(tmp_path / "GANGen-Detection", {"AttGAN": 10}, size=(64, 64))


@pytest.fixture
def lfm_state():
    torch.manual_seed(5)
    detector = get_detector("lfm")
    model = detector.build()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return export_state_dict(model, detector)


class Decodes:
    """Wraps bench.engine.decode.decode_image: records each decoded path; raises KeyboardInterrupt (a Ctrl-C) on
    decode number `interrupt_after + 1` when set."""

    def __init__(self, monkeypatch, interrupt_after: int | None = None) -> None:
        self.paths: list[str] = []
        self.interrupt_after = interrupt_after
        real = bench.engine.decode.decode_image

        def counted(path, *args, **kwargs):
            if self.interrupt_after is not None and len(self.paths) >= self.interrupt_after:
                raise KeyboardInterrupt
            self.paths.append(str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(bench.engine.decode, "decode_image", counted)


def small_parts(monkeypatch) -> None:
    """Scores reach part files every PART_EVERY images (BENCH_PART_EVERY, read when a run starts)."""
    monkeypatch.setenv("BENCH_PART_EVERY", str(PART_EVERY))


def run(suite, weights, output, *extra) -> int:
    return main(["run", "--detector", "lfm", "--suite", str(suite), "--weights", str(weights), "--output",
                 str(output), "--workers", "0", "--batch-size", str(PART_EVERY), *extra])


def scores_of(output) -> pd.DataFrame:
    folder = sorted((output / "runs").iterdir())[0]  # the first run written there
    return pd.read_parquet(folder / "scores.parquet")


@pytest.mark.slow
def test_a_resumed_run_decodes_only_the_unfinished_images(tmp_path, suite, lfm_state, monkeypatch):
    weights = tmp_path / "lfm.pth"
    torch.save(lfm_state, weights)
    all_paths = sorted(str(p) for p in suite.rglob("*.png"))
    assert len(all_paths) == 20
    small_parts(monkeypatch)
    output = tmp_path / "results"

    # interrupted after 12 decodes = 3 batches of 4, each flushed to a part file
    with monkeypatch.context() as patch:
        first = Decodes(patch, interrupt_after=12)
        assert run(suite, weights, output) == 130
    assert len(first.paths) == 12 and not list(output.glob("runs/*/run.json"))

    with monkeypatch.context() as patch:
        resumed = Decodes(patch)
        assert run(suite, weights, output) == 0
    assert sorted(resumed.paths) == sorted(set(all_paths) - set(first.paths))  # the other 8, once each

    with monkeypatch.context() as patch:  # finished: nothing is decoded again
        again = Decodes(patch)
        assert run(suite, weights, output) == 0
    assert again.paths == []

    clean = tmp_path / "clean"
    assert run(suite, weights, clean) == 0
    pd.testing.assert_frame_equal(scores_of(output).sort_values("path", ignore_index=True),
                                  scores_of(clean).sort_values("path", ignore_index=True))


@pytest.mark.slow
def test_other_weights_bytes_do_not_reuse_stored_scores(tmp_path, suite, lfm_state, monkeypatch):
    """Two files with the same tensors (a raw state_dict and the same one wrapped as {'model': ...}) give the
    same outputs everywhere, the model fingerprint included; only their sha256 differs. That alone must key
    the cache: the second file's run scores every image again."""
    raw, wrapped = tmp_path / "raw.pth", tmp_path / "wrapped.pth"
    torch.save(lfm_state, raw)
    torch.save({"model": lfm_state}, wrapped)
    assert raw.read_bytes() != wrapped.read_bytes()
    output = tmp_path / "results"

    counts = {}
    for label, weights in (("raw", raw), ("raw again", raw), ("wrapped", wrapped)):
        with monkeypatch.context() as patch:
            decodes = Decodes(patch)
            assert run(suite, weights, output, "--json") == 0
        counts[label] = len(decodes.paths)
    assert counts == {"raw": 20, "raw again": 0, "wrapped": 20}

    runs = [json.loads((folder / "run.json").read_text()) for folder in sorted((output / "runs").iterdir())]
    assert len({r["weights"]["sha256"] for r in runs}) == 2
    # same tensors, so the same scores: rescoring was needed for the key, not because outputs differ
    folders = sorted((output / "runs").iterdir(), key=lambda f: json.loads((f / "run.json").read_text())["started_at"])
    by_weights = {json.loads((f / "run.json").read_text())["weights"]["path"]: pd.read_parquet(f / "scores.parquet")
                  for f in folders}
    pd.testing.assert_frame_equal(by_weights[str(raw)], by_weights[str(wrapped)])
