"""`bench train --resume` is exact with the default loader workers, also after a SIGKILL mid-epoch; a
damaged run folder (malicious or truncated state.pt, truncated config.json) is a message and exit 2.

The training runs use the demo recipe (native size, 96x96 random crops) on a handful of 128x128 images
and `--max-steps-per-epoch`, so that each `bench train` takes a few seconds.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_train import make_folder

from bench.cli import main
from bench.train import DEMO_RECIPE

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_like(tmp_path) -> Path:
    """A train/val pair of 128x128 images (the demo images' size), 6 + 6 to train on, 2 + 2 to validate."""
    make_folder(tmp_path / "data" / "train", 6, 128, seed=1)
    make_folder(tmp_path / "data" / "val", 2, 128, seed=2)
    return tmp_path / "data"


def train_argv(data: Path, output: Path, epochs: int = 2) -> list[str]:
    # no --workers: the default (persistent loader workers when the machine has 2 CPUs or more)
    recipe = ["--resize", "none" if DEMO_RECIPE["resize"] is None else str(DEMO_RECIPE["resize"]),
              "--crop", str(DEMO_RECIPE["crop"])]
    return ["train", "--detector", "lfm", "--train-set", str(data / "train"), *recipe, "--epochs", str(epochs),
            "--batch-size", "4", "--max-steps-per-epoch", "3", "--data-root", str(data.parent / "root"),
            "--output", str(output), "--json"]


def _bench(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bench", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _state_epoch(folder: Path) -> int | None:
    try:
        return torch.load(folder / "state.pt", weights_only=True)["epoch"]
    except (OSError, RuntimeError, EOFError, KeyError, pickle.UnpicklingError):
        return None  # not there yet, or being replaced


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="with 1 CPU the default is 0 loader workers: "
                                                      "nothing persistent to test")
def test_resume_after_sigkill_mid_epoch_is_byte_identical_with_default_workers(demo_like, tmp_path):
    full = _bench(train_argv(demo_like, tmp_path / "full"))
    out, err = full.communicate(timeout=300)
    assert full.returncode == 0, err[-3000:]
    config = json.loads((tmp_path / "full" / "config.json").read_text())
    assert config["workers"] >= 1 and config["resize"] is None and config["crop"] == 96

    cut = tmp_path / "cut"
    victim = _bench(train_argv(demo_like, cut))
    deadline = time.monotonic() + 300
    while _state_epoch(cut) != 1:  # epoch 1 is on disk: epoch 2 starts now
        assert victim.poll() is None, victim.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # into epoch 2 (an epoch takes seconds here)
    assert victim.poll() is None, "the run ended before it could be killed mid-epoch 2"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert _state_epoch(cut) == 1  # killed before epoch 2 was recorded

    # in a process like the others: the thread count of CPU kernels changes float sums
    resumed = _bench(["train", "--resume", "--output", str(cut), "--json"])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert json.loads(out)["resumed_from"] == 1
    for name in ("last.pth", "best.pth"):
        assert (cut / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
    a = torch.load(tmp_path / "full" / "state.pt", weights_only=True)
    b = torch.load(cut / "state.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]


class _RunsCode:
    """Pickles to `os.system("touch MARKER")`: loading it with plain pickle would run that command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def run_folder(tmp_path) -> Path:
    """A run folder with a complete, resolved recipe (config.json) as `bench train` writes it."""
    from dataclasses import asdict

    from bench.train import TrainConfig

    make_folder(tmp_path / "data" / "train", 2, 48, seed=1)
    make_folder(tmp_path / "data" / "val", 1, 48, seed=2)
    folder = tmp_path / "run"
    folder.mkdir()
    config = TrainConfig(detector="lfm-k4", train_set=str(tmp_path / "data" / "train"), data_root=str(tmp_path),
                         output=str(folder), resize=None, crop=40, epochs=2, batch_size=4, lr=1e-4,
                         aux_loss_weight=0.02, workers=0, amp="off")
    (folder / "config.json").write_text(json.dumps(asdict(config)))
    return folder


def test_a_malicious_state_pt_is_refused_and_runs_no_code(run_folder, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    torch.save({"format": 1, "epoch": _RunsCode(marker)}, run_folder / "state.pt")
    assert main(["train", "--resume", "--output", str(run_folder)]) == 2
    err = capsys.readouterr().err
    assert f"cannot read {run_folder / 'state.pt'} as a resume state" in err and "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "not a dict", "no model"])
def test_a_damaged_state_pt_is_exit_2(run_folder, capsys, damage):
    state = {"format": 1, "epoch": 1, "step": 1, "optimizer": {}, "rng": {}, "best": None, "best_epoch": None,
             "last": None, "history": [], "train_fingerprint": "x", "model": {"w": torch.zeros(3)}}
    path = run_folder / "state.pt"
    if damage == "truncated":
        torch.save(state, path)
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "not a dict":
        torch.save(torch.zeros(3), path)
    else:
        torch.save({k: v for k, v in state.items() if k != "model"}, path)
    assert main(["train", "--resume", "--output", str(run_folder)]) == 2
    err = capsys.readouterr().err
    expected = {"truncated": "as a resume state", "not a dict": "unknown format ('Tensor')", "no model": "lacks model"}
    assert expected[damage] in err and str(path) in err


@pytest.mark.parametrize("text, message", [
    ('{"detector": "lfm-k4", "train_se', "cannot read"),
    ("", "cannot read"),
    ('["lfm-k4"]', "holds a JSON list"),
    ('{"detector": "lfm-k4"}', "has no train_set"),
    ('{"detector": "lfm-k4", "train_set": "x", "epochs": "two"}', "wrong type"),
])
def test_a_damaged_config_json_is_exit_2(run_folder, capsys, text, message):
    (run_folder / "config.json").write_text(text)
    assert main(["train", "--resume", "--output", str(run_folder)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(run_folder / "config.json") in err and "Traceback" not in err


@pytest.mark.parametrize("content, message", [(b"", "is empty (0 bytes)"),
                                              (b"hello, these are not weights\n", "as a PyTorch checkpoint")])
def test_a_plain_text_or_empty_pth_is_exit_2(tmp_path, capsys, content, message):
    weights = tmp_path / "w.pth"
    weights.write_bytes(content)
    make_folder(tmp_path / "img", 1, 48)
    assert main(["predict", str(tmp_path / "img"), "--detector", "lfm", "--weights", str(weights)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(weights) in err
