"""`bench predict` against logits measured with the official LFM code (../shared/reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bench.cli import main


@pytest.mark.parametrize("protocol,key", [("resize256", "resize256"), ("native", "native")])
def test_official_logits_on_every_sample(shared_dir, official_lfm_path, capsys, protocol, key):
    reference = json.loads((shared_dir / "reference" / "lfm_official_logits.json").read_text())["outputs"]
    samples = sorted((shared_dir / "samples").glob("*.png"))
    assert {p.name for p in samples} == set(reference)
    assert main(["predict", "--detector", "lfm", "--weights", str(official_lfm_path), "--protocol", protocol,
                 "--json", *map(str, samples)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(samples)
    for line in lines:
        row = json.loads(line)
        assert set(row) == {"path", "logit", "prob"}
        name = row["path"].rsplit("/", 1)[-1]
        assert row["logit"] == pytest.approx(reference[name][key]["logit"], abs=1e-4), name
        assert row["prob"] == pytest.approx(reference[name][key]["prob"], abs=1e-6), name


def test_plain_output_is_a_table_and_says_when_it_cropped(tmp_path, official_lfm_path, capsys):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (101, 131, 3), dtype=np.uint8)).save(tmp_path / "odd.png")
    assert main(["predict", "--detector", "lfm-official", "--weights", str(official_lfm_path),
                 "--protocol", "native", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "odd.png" in out and "cropped to even size" in out and "verdict" in out


def test_unreadable_files_are_reported_and_the_rest_scored(tmp_path, official_lfm_path, capsys):
    Image.new("RGB", (64, 64), (120, 30, 200)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_text("nope")
    assert main(["predict", "--detector", "lfm", "--weights", str(official_lfm_path), "--json",
                 str(tmp_path / "good.png"), str(tmp_path / "bad.png")]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1
    assert "bad.png" in captured.err and "not an image" in captured.err
    assert main(["predict", "--detector", "lfm", "--weights", str(official_lfm_path),
                 str(tmp_path / "bad.png")]) == 2


def test_missing_path_and_unknown_detector_exit_2(tmp_path, capsys):
    Image.new("RGB", (64, 64)).save(tmp_path / "x.png")
    assert main(["predict", "--detector", "lfm", str(tmp_path / "nope.png")]) == 2
    assert main(["predict", "--detector", "nprr", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nope.png does not exist" in err and "Did you mean: npr" in err
