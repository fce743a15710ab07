"""One rule for `--weights` in every verb (issue 22, item 6): one value for all, NAME=WEIGHTS pairs, or a
list in detector order; run, sweep, explain, embed and figure read it through weights_per_detector."""

from __future__ import annotations

import json

import pytest
from tests_support import write_suite

from bench.cli import main
from bench.engine.evaluation import weights_per_detector
from bench.errors import BenchError, UnknownNameError


def test_the_rule():
    names = ["lfm", "npr", "lfm-gap"]
    assert weights_per_detector(None, names) == [None, None, None]
    assert weights_per_detector("demo", names) == ["demo", "demo", "demo"]
    assert weights_per_detector("official,demo,x.pth", names) == ["official", "demo", "x.pth"]
    assert weights_per_detector("official,,demo", names) == ["official", None, "demo"]  # empty: default
    assert weights_per_detector("npr=demo, lfm=official", names) == ["official", "demo", None]
    with pytest.raises(BenchError, match="2 entries for 3 detectors"):
        weights_per_detector("official,demo", names)
    with pytest.raises(BenchError, match="'cnndetection' is not one of the detectors"):
        weights_per_detector("cnndetection=official", names)
    with pytest.raises(BenchError, match="mixes"):
        weights_per_detector("lfm=official,demo", names)
    with pytest.raises(BenchError, match="twice"):
        weights_per_detector("lfm=official,lfm=demo", names)


def test_known_weights_is_spelt_right():
    assert "Known weights:" in str(UnknownNameError("weights", "lfm:x", ["lfm:demo"]))
    assert "Known detectors:" in str(UnknownNameError("detector", "lfn", ["lfm"]))


@pytest.mark.slow
def test_run_takes_pairs_and_sweep_a_list(tmp_path, capsys):
    suite = write_suite(tmp_path / "suite", {"a": 2}, size=(32, 32))
    common = ["--detector", "lfm,lfm-gap", "--suite", str(suite), "--output", str(tmp_path / "results"),
              "--workers", "0", "--json"]
    assert main(["run", *common, "--weights", "lfm-gap=demo,lfm=demo"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)) == ["lfm", "lfm-gap"]
    infos = [json.loads((r / "run.json").read_text()) for r in (tmp_path / "results" / "runs").iterdir()]
    assert {i["detector"]: i["weights"]["name"] for i in infos} == {"lfm": "lfm:demo", "lfm-gap": "lfm-gap:demo"}
    assert main(["sweep", *common, "--weights", "demo,demo", "--perturb", "jpeg:q=90"]) == 0
    swept = json.loads(capsys.readouterr().out)
    assert swept["labels"] == {"lfm": "LFM (lfm:demo)", "lfm-gap": "LFM w/ GAP (lfm-gap:demo)"}


def test_every_verb_refuses_a_bad_weights_value_with_exit_2(tmp_path, capsys):
    suite = write_suite(tmp_path / "suite", {"a": 1}, size=(32, 32))
    base = ["--detector", "lfm,lfm-gap", "--suite", str(suite), "--output", str(tmp_path / "results"), "--workers", "0"]
    for verb in (["run", *base], ["sweep", *base], ["embed", "--detector", "lfm,lfm-gap", "--suite", str(suite),
                                                   "--output", str(tmp_path / "e")]):
        assert main([*verb, "--weights", "npr=demo"]) == 2, verb
        assert "'npr' is not one of the detectors (lfm, lfm-gap)" in capsys.readouterr().err
    image = next((suite / "a" / "1_fake").iterdir())
    assert main(["explain", "--detector", "lfm,lfm-gap", "--weights", "demo,demo,demo", str(image),
                 "--output", str(tmp_path / "x")]) == 2
    assert "3 entries for 2 detectors" in capsys.readouterr().err
    assert main(["figure", "visual", "--weights", "lfm=demo,cnndetection=demo", "--output", str(tmp_path / "f"),
                 "--demo", "--data-root", str(tmp_path / "data")]) == 2
    assert "'cnndetection' is not one of the detectors" in capsys.readouterr().err
