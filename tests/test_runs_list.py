"""Run folders named by what distinguishes them, and `bench list runs` (issue 22, item 10)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests_support import write_suite

from bench.cli import main
from bench.engine.runner import run_name

REPO = Path(__file__).resolve().parents[1]


def test_run_names_carry_weights_perturbation_protocol_sample_and_calibration():
    base = {"detector": "timm:resnet18", "suites": ["wild", "demo-gan"],
            "weights": {"name": None, "path": "/x/runs/a/last.pth", "sha256": "1a2b3c4d5e6f" + "0" * 52}}
    assert run_name(base, "20261206-070000") == "20261206-070000-timm-resnet18-last-1a2b3c4d-wild+demo-gan"
    named = {**base, "weights": {"name": "lfm:official", "sha256": "9" * 64, "path": "/c/l.pth"}, "detector": "lfm",
             "perturbation": "jpeg:q=75", "protocol_choice": "own", "limit_per_class": 25,
             "calibration": {"on": "/data/my val"}}
    assert run_name(named, "s") == "s-lfm-official-wild+demo-gan-jpeg-q-75-protocol-own-limit25-cal-my-val"
    assert len(run_name({**named, "suites": ["x" * 200]}, "s")) == 120


def test_list_runs_tells_perturbed_and_clean_runs_apart(tmp_path, capsys):
    suite = write_suite(tmp_path / "mine", {"a": 2}, size=(32, 32))
    out = tmp_path / "results"
    common = ["--detector", "lfm", "--weights", "demo", "--suite", str(suite), "--output", str(out), "--workers", "0",
              "--json"]
    assert main(["run", *common]) == 0
    assert main(["run", *common, "--perturb", "jpeg:q=75"]) == 0
    capsys.readouterr()
    folders = sorted(p.name for p in (out / "runs").iterdir())
    assert [name.split("-", 2)[2] for name in folders] == ["lfm-demo-mine", "lfm-demo-mine-jpeg-q-75"]
    assert main(["list", "runs", "--output", str(out), "--json"]) == 0
    listed = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(listed) == folders
    for name in folders:
        metrics = json.loads((out / "runs" / name / "metrics.json").read_text())
        row = listed[name]
        assert (row["detector"], row["weights"], row["suites"], row["n_images"]) == ("lfm", "lfm:demo", ["mine"], 4)
        assert (row["acc"], row["ap"]) == (metrics["mean"]["acc"], metrics["mean"]["ap"])
    assert [listed[n]["perturbation"] for n in folders] == [None, "jpeg:q=75"]
    assert main(["list", "runs", "--output", str(out)]) == 0
    table = capsys.readouterr().out
    assert "jpeg:q=75" in table and "clean" in table and "2 finished run(s)" in table


def test_sweep_folders_are_not_tracked_by_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", "results/sweeps/20261206-lfm-demo/sweep.json"], cwd=REPO)
    assert ignored.returncode == 0
