"""Reading checkpoint files and loading them strictly into a detector's model."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from bench.errors import BenchError
from detectors.base import Detector


class CheckpointError(BenchError):
    """A checkpoint that cannot be read or does not fit the detector (exit code 2)."""


class UnreadableCheckpoint(Exception):
    """torch.load could not read a file; the message is one line naming what went wrong."""


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def safe_torch_load(path: Path, map_location="cpu"):
    """``torch.load(weights_only=True)``: tensors and plain containers only, no code runs. A file that is
    not a checkpoint (plain text, a truncated zip, a pickle that asks for a class) fails in the pickle
    machinery with almost any exception type (KeyError on a text file's bytes read as memo opcodes,
    UnpicklingError for a forbidden global, EOFError, BadZipFile, ...), so every Exception is taken as
    "not readable" here and reported as UnreadableCheckpoint."""
    try:
        # argparse.Namespace: training scripts in the field (SAFE's, MAE-style) save their args beside the
        # weights; it holds plain values, so allowing it keeps weights_only's guarantee
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # see the docstring: the unpickler's failures have no fixed type
        raise UnreadableCheckpoint(first_line(error)) from error


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint safely (``weights_only=True``) and unwrap the layouts seen in the field:
    a raw ``state_dict``, ``{'model': state_dict}`` (CNNDetection), ``{'state_dict': ...}``, and
    ``module.``-prefixed keys from DataParallel/DDP."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); re-download it or point --weights elsewhere")
    try:
        loaded = safe_torch_load(path)
    except UnreadableCheckpoint as error:
        raise CheckpointError(
            f"cannot read {path} as a PyTorch checkpoint ({error}). "
            "Check that the file is complete (re-download it) and is a state_dict saved with torch.save."
        ) from error
    for wrapper in ("model", "state_dict", "model_state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
            break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a state_dict of tensors")
    if loaded and all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return loaded


def map_keys(state_dict: dict[str, torch.Tensor], key_map, model_keys: set[str]) -> dict[str, torch.Tensor]:
    """Rename checkpoint keys with the detector's prefix map; keys already in the model's names stay."""
    mapped = {}
    for key, value in state_dict.items():
        if key not in model_keys:
            for source, target in key_map:
                if key.startswith(source):
                    key = target + key[len(source):]
                    break
        mapped[key] = value
    return mapped


def load_state_dict_strict(model: nn.Module, state_dict: dict[str, torch.Tensor], detector: Detector, path) -> None:
    """``strict=True`` loading that names missing keys, unexpected keys and shape mismatches."""
    expected = model.state_dict()
    mapped = map_keys(state_dict, detector.key_map, set(expected))
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    wrong_shape = sorted(
        f"{k} (checkpoint {tuple(mapped[k].shape)}, model {tuple(expected[k].shape)})"
        for k in set(expected) & set(mapped)
        if mapped[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(
            f"checkpoint {path} does not fit detector {detector.name!r}: " + "; ".join(parts)
            + ". Check that --weights belongs to this detector (see `bench list weights`)."
        )
    model.load_state_dict(mapped, strict=True)


def export_state_dict(model: nn.Module, detector: Detector) -> dict[str, torch.Tensor]:
    """The model's weights under the checkpoint names the detector's own code uses (inverse key map);
    only the ``checkpoint_module`` for detectors whose checkpoints hold a part (UnivFD's head)."""
    if detector.checkpoint_module:
        model = model.get_submodule(detector.checkpoint_module)
    exported = {}
    for key, value in model.state_dict().items():
        for source, target in detector.key_map:
            if key.startswith(target):
                key = source + key[len(target):]
                break
        exported[key] = value.detach().cpu()
    return exported
