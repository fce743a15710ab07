"""The README's main command on a machine with no data and no network: the demo suites with the demo weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detectors import get_detector, load_detector
from detectors.weights import all_weights

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("detector", ["lfm", "lfm-gap", "npr", "lae"])
def test_demo_weights_are_bundled_and_load(detector):
    entry = next(e for e in all_weights() if e.name == f"{get_detector(detector).weights_family}:demo")
    assert entry.bundled and entry.sha256
    loaded = load_detector(detector, "demo")
    assert loaded.weights.sha256 == entry.sha256


@pytest.mark.slow
def test_main_command_runs_the_demo_offline(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    # an empty home, no weights folder, and no way out: a proxy that does not exist
    env.update(HOME=str(home), http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
               BENCH_DATA=str(tmp_path / "datasets"), BENCH_RESULTS=str(tmp_path / "results"))
    result = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--detector", "lfm", "--suite", "all", "--limit", "20"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("No paper suite found under") and "demo" in lines[0]
    assert "README.md" in lines[0]
    for generator in ("tconv", "pixel-shuffle", "bicubic-smooth", "latent-decoder", "mean"):
        assert any(line.startswith(generator) for line in lines), generator
    assert "synthetic demo data" in result.stdout
    run_json = json.loads(next((tmp_path / "results" / "runs").glob("*/run.json")).read_text())
    assert run_json["weights"]["name"] == "lfm:demo" and run_json["suites"] == ["demo-gan", "demo-diffusion"]
    assert not list(home.rglob("*.pth"))  # nothing downloaded or cached
