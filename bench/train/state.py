"""Files of a run: checkpoints and their sidecars, log.csv, config.json, and the resume state with the RNG
states."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.engine.store import atomic_write_bytes, atomic_write_json
from bench.errors import BenchError
from bench.train.recipe import LEGACY_RECIPE, RECIPE_FIELDS, TrainConfig, recipe_defaults

STATE_FORMAT = 1
STATE_KEYS = ("epoch", "step", "model", "optimizer", "rng", "best", "best_epoch", "last", "history",
              "train_fingerprint")
"""What `finish_epoch` writes into state.pt and `setup` reads back."""
LOG_COLUMNS = ("epoch", "lr", "train_loss", "val_acc", "val_ap", "seconds")
RESUMABLE_CHANGES = ("epochs", "workers", "device", "amp", "data_root", "output", "checkpoint")
"""Config fields a resumed run may change: none of them alters what the remaining epochs compute
(a different device or amp setting changes the arithmetic, not the recipe)."""


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def rng_states() -> dict:
    numpy_state = np.random.get_state(legacy=False)
    states = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": numpy_state["state"]["pos"], "has_gauss": numpy_state["has_gauss"],
                  "gauss": numpy_state["gauss"]},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    numpy_state = states["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"],
    })
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])



def write_checkpoint(folder: Path, which: str, model: nn.Module, detector, sidecar: dict) -> Path:
    """`<which>.pth` in the detector's own key layout plus `<which>.json`; both written atomically."""
    from detectors import export_state_dict

    state_dict = export_state_dict(model, detector)
    wrapper = detector.checkpoint_wrapper
    payload = torch_bytes({wrapper: state_dict} if wrapper else state_dict)
    path = folder / f"{which}.pth"
    atomic_write_bytes(path, payload)
    atomic_write_json(folder / f"{which}.json", {
        **sidecar, "checkpoint": path.name, "sha256": hashlib.sha256(payload).hexdigest(),
    })
    return path


def write_log(folder: Path, history: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(folder / "log.csv", text.getvalue().encode())


def load_config(folder: str | Path) -> TrainConfig:
    """The recipe of an earlier run (its `config.json`)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise BenchError(f"{folder} holds no training run to resume (no config.json); check --output")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BenchError(f"cannot read {path} ({error}); the run's recipe is lost, so it cannot be resumed. "
                         "Start a new run in another --output.") from error
    if not isinstance(saved, dict):
        raise BenchError(f"{path} holds a JSON {type(saved).__name__}, not a training recipe; it cannot be resumed")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    missing = [name for name in ("detector", "train_set") if name not in saved]
    if missing:
        raise BenchError(f"{path} has no {', '.join(missing)}: not a complete training recipe; it cannot be resumed")
    try:
        # a recipe recorded before a field existed ran with that field's legacy behaviour
        return TrainConfig(**{**LEGACY_RECIPE, **{k: v for k, v in saved.items() if k in known}})
    except TypeError as error:  # a value of the wrong type fails a comparison in the recipe's checks
        raise BenchError(f"{path} holds a value of the wrong type ({error}); it cannot be resumed") from error


def load_state(folder: Path, device: torch.device) -> dict:
    path = folder / "state.pt"
    if not path.is_file():
        raise BenchError(
            f"{folder} has no state.pt: the run stopped before its first epoch ended. Start it again "
            "without --resume (and a fresh --output)."
        )
    from detectors.checkpoints import UnreadableCheckpoint, safe_torch_load

    try:
        state = safe_torch_load(path, map_location=device)  # weights_only: a malicious pickle runs no code
    except UnreadableCheckpoint as error:
        raise BenchError(f"cannot read {path} as a resume state ({error}); it cannot be resumed. "
                         "Start a new run in another --output.") from error
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise BenchError(f"{path} is in an unknown format ({found!r}); it cannot be resumed")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise BenchError(f"{path} lacks {', '.join(missing)}; it cannot be resumed")
    return state


def check_resumable(saved: TrainConfig, config: TrainConfig) -> None:
    changed = [
        f"{f.name} ({getattr(saved, f.name)!r} -> {getattr(config, f.name)!r})"
        for f in dataclasses.fields(TrainConfig)
        if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(config, f.name)
    ]
    if changed:
        raise BenchError(
            "--resume continues a run with its own recipe; these differ from it: " + ", ".join(changed)
            + ". Only " + ", ".join(RESUMABLE_CHANGES) + " may change; start a new run for another recipe."
        )


def train_config(given: dict, *, resume: bool = False) -> TrainConfig:
    """The TrainConfig that the given recipe values ask for: a new recipe (the train set's defaults with
    `given` laid over them), or, with `resume`, the run in `given["output"]` with the changes given."""
    unknown = sorted(set(given) - set(RECIPE_FIELDS))
    if unknown:
        raise BenchError(f"unknown recipe fields: {', '.join(unknown)}")
    if resume:
        if "output" not in given:
            raise BenchError("--resume needs --output DIR, the folder of the run to continue")
        return dataclasses.replace(load_config(given["output"]), **given)
    missing = [f"--{name.replace('_', '-')}" for name in ("detector", "train_set") if name not in given]
    if missing:
        raise BenchError(f"{' and '.join(missing)} required (see `bench train --help`)")
    return TrainConfig(**{**recipe_defaults(given["train_set"]), **given})
