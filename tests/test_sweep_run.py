"""`bench run --perturb` and `bench sweep` end to end on a tiny folder suite with LFM's bundled demo weights:
the perturbation reaches the decoder (a stored logit equals the model on pixels perturbed by hand), is part
of the cache key and run.json, and a sweep killed with SIGKILL finishes, when run again, with the numbers
of an uninterrupted one."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score
from tests_support import write_suite

from bench.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def suite(tmp_path) -> Path:
    return write_suite(tmp_path / "suite", {"g1": 3, "g2": 3}, size=(40, 48))


def bench_args(suite: Path, output: Path, *extra: str) -> list[str]:
    return ["--detector", "lfm", "--suite", str(suite), "--weights", "demo", "--output", str(output),
            "--device", "cpu", "--workers", "0", "--batch-size", "4", *extra]


def run_folders(output: Path) -> list[Path]:
    return sorted((output / "runs").iterdir())


def test_run_perturb_reaches_the_decoder_and_the_cache_key(suite, tmp_path, capsys):
    output = tmp_path / "results"
    assert main(["run", *bench_args(suite, output, "--perturb", "jpeg:q=30", "--json")]) == 0
    (folder,) = run_folders(output)
    info = json.loads((folder / "run.json").read_text())
    assert info["perturbation"] == "jpeg:q=30"
    keys = [json.loads(p.read_text()) for p in (output / "cache").glob("*/key.json")]
    assert len(keys) == 2 and all(k["perturbation"] == "jpeg:q=30" for k in keys)
    scores = pd.read_parquet(folder / "scores.parquet")

    # the stored logit of one fake = the model on that file JPEG-compressed by hand, then Resize((256, 256))
    from bench import api

    loaded = api.load_detector("lfm", "demo")
    relative = scores[scores["label"] == 1]["path"].iloc[0]
    buffer = io.BytesIO()
    Image.open(suite / relative).convert("RGB").save(buffer, format="JPEG", quality=30)
    by_hand = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").resize((256, 256), Image.BILINEAR)
    pixels = torch.from_numpy(np.asarray(by_hand).copy()).permute(2, 0, 1)[None]
    with torch.inference_mode():
        logit = loaded.model.eval()(loaded.preprocessing.normalize(pixels)).item()
    stored = scores.set_index("path").loc[relative, "logit"]
    assert abs(stored - logit) < 1e-3

    # clean is another cache entry; the same perturbation again reuses its entries (no new ones)
    assert main(["run", *bench_args(suite, output, "--json")]) == 0
    assert len(list((output / "cache").glob("*/key.json"))) == 4
    assert main(["run", *bench_args(suite, output, "--perturb", "JPEG:q=30", "--json")]) == 0
    assert len(list((output / "cache").glob("*/key.json"))) == 4
    capsys.readouterr()
    # the clean run, found by what it records (two runs in one second sort by name, not by time)
    (clean_run,) = [f for f in run_folders(output) if json.loads((f / "run.json").read_text())["perturbation"] is None]
    clean = pd.read_parquet(clean_run / "scores.parquet")
    assert not np.allclose(clean["logit"].to_numpy(), scores["logit"].to_numpy())


def test_run_with_a_bad_perturbation_is_a_usage_error(suite, tmp_path, capsys):
    assert main(["run", *bench_args(suite, tmp_path / "r", "--perturb", "jpeg:q=500")]) == 2
    assert "q must be a finite number in [1, 100], not 500" in capsys.readouterr().err
    assert not (tmp_path / "r" / "runs").exists()


def sweep_values(folder: Path) -> dict:
    return json.loads((folder / "sweep.json").read_text())["values"]


@pytest.mark.slow
def test_sweep_writes_table_and_plots_from_the_runs_it_made(suite, tmp_path, capsys):
    output = tmp_path / "results"
    assert main(["sweep", *bench_args(suite, output, "--perturb", "jpeg:q=90,50", "--perturb", "noise:std=20")]) == 0
    out = capsys.readouterr().out
    (folder,) = (output / "sweeps").iterdir()
    for name in ("sweep.json", "robustness.md", "robustness.tex", "robustness.png", "robustness.pdf"):
        assert (folder / name).stat().st_size > 0
    values = sweep_values(folder)
    assert list(values) == ["clean", "jpeg:q=90", "jpeg:q=50", "noise:std=20"]
    for spec, by_detector in values.items():
        entry = by_detector["lfm"]
        run = Path(entry["run"])
        assert json.loads((run / "run.json").read_text())["perturbation"] == (None if spec == "clean" else spec)
        scores = pd.read_parquet(run / "scores.parquet")
        # the sweep's AP is the mean over generators of sklearn's AP on the run's own scores
        aps = [average_precision_score(g["label"], g["prob"]) for _, g in scores.groupby("generator")]
        assert entry["ap"] == pytest.approx(np.mean(aps), abs=1e-9)
        # the plot's whiskers are the level's run's own intervals of the two plotted metrics (absent here, with
        # their reason: 3 images per class)
        stored = json.loads((run / "metrics.json").read_text())["mean"]["intervals"]
        assert entry["intervals"] == {name: stored[name] for name in ("acc", "ap")}
        assert entry["intervals"]["ap"]["low"] is None and "fewer than" in entry["intervals"]["ap"]["reason"]
    assert "| q=90 ACC | q=90 AP | q=50 ACC | q=50 AP |" in out and "AP change vs clean" in out
    ap50 = 100 * values["jpeg:q=50"]["lfm"]["ap"]
    assert f"{ap50:.1f}" in (folder / "robustness.md").read_text()


@pytest.mark.slow
def test_sweep_killed_with_sigkill_resumes_to_identical_numbers(suite, tmp_path):
    grid = ["--perturb", "jpeg:q=90,70,50,30", "--perturb", "blur:sigma=1,2"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_PART_EVERY": "2"}
    command = [sys.executable, "-m", "bench", "sweep", *bench_args(suite, tmp_path / "killed", *grid)]
    command[command.index("--batch-size") + 1] = "2"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = tmp_path / "killed" / "cache"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(cache.glob("*/scores.parquet"))) < 3:
        assert process.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(list(cache.glob("*/scores.parquet")))
    assert 3 <= done < 14  # 7 levels x 2 generators: killed mid-way
    sweeps = tmp_path / "killed" / "sweeps"  # checked writable before any work, so it may exist, but empty:
    assert not sweeps.exists() or not any(sweeps.iterdir())  # no half-written sweep folder
    assert subprocess.run(command, env=env, capture_output=True).returncode == 0
    reference = [*command]
    reference[reference.index("--output") + 1] = str(tmp_path / "reference")
    assert subprocess.run(reference, env=env, capture_output=True).returncode == 0
    (resumed,) = (tmp_path / "killed" / "sweeps").iterdir()
    (uninterrupted,) = (tmp_path / "reference" / "sweeps").iterdir()
    strip = lambda values: {s: {d: {k: v for k, v in e.items() if k != "run"} for d, e in by.items()} for s, by in values.items()}  # noqa: E731
    assert strip(sweep_values(resumed)) == strip(sweep_values(uninterrupted))
    assert (resumed / "robustness.md").read_text() == (uninterrupted / "robustness.md").read_text()
