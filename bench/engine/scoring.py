"""The one scoring loop: image files -> decoded once -> every scorer's output per image.

`bench run`, `bench predict`, `bench check`, validation during training and everything built on them
(sweeps, embeddings) call `score_images`; none has a loop of its own. A scorer is any callable that takes
a uint8 batch [B, 3, H, W] on the device and returns one value per image ([B] logits, or [B, D] features);
the usual one is `bench.engine.inference.prepare_scorer(model, preprocessing)`, which normalises with the
detector's `Preprocessing`. Scorers that share a `DecodeSpec` share each decode.

Under a multi-crop resolution policy (bench.engine.protocol) an image decodes to N crops; the scorer sees
them as N images and the image's value is the mean of their N outputs (logits).

A file that cannot be used (corrupt, too small for the model, ...) is never fatal: its `ScoredImage`
carries the reason instead of a value, and the caller records it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.engine.decode import Batch, DecodeSpec, ImageDataset, collate_by_size
from bench.engine.inference import autocast_context

log = logging.getLogger(__name__)

Scorer = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class ScoredImage:
    index: int
    """Position in the `items` given to `score_images`."""
    values: dict[str, torch.Tensor | float | None]
    """Scorer name -> its output for this image (a float for [B] outputs, a 1-D tensor for [B, D]);
    None where that scorer could not score the image."""
    reasons: dict[str, str | None]
    """Scorer name -> why the image could not be scored by it (None when it was)."""
    cropped: bool = False
    """Cropped to an even size by the protocol (native size, odd width or height)."""


def _values_of(output: torch.Tensor) -> list:
    output = output.detach().float().cpu()
    return output.tolist() if output.dim() == 1 else list(output)


def _score_group(scorer: Scorer, pixels: torch.Tensor) -> tuple[list, str | None]:
    """One same-size group through one scorer, or Nones and the reason when the model cannot take that
    size (e.g. a native-size image too small for Top-K pooling): those images are skipped, not fatal."""
    try:
        if pixels.dim() == 5:  # [B, N, 3, S, S]: N crops per image (multicrop); an image's value is their mean
            images, crops = pixels.shape[:2]
            output = scorer(pixels.flatten(0, 1))
            return _values_of(output.reshape(images, crops, *output.shape[1:]).float().mean(dim=1)), None
        return _values_of(scorer(pixels)), None
    except (ValueError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not _is_size_error(error):
            raise
        height, width = pixels.shape[-2:]
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [None] * len(pixels), f"cannot be scored at {width}x{height}: {first_line}"


def _is_size_error(error: RuntimeError) -> bool:
    # what torch raises when a feature map shrinks below a kernel (tiny native-size images)
    text = str(error)
    return "Kernel size can't be greater than actual input size" in text or "Output size is too small" in text


def _rows(batch: Batch, outputs: dict[str, list[tuple[list[int], list, str | None]]]) -> list[ScoredImage]:
    cropped = set(batch.cropped)
    rows: dict[int, ScoredImage] = {}
    for index, reason in batch.failed:
        rows[index] = ScoredImage(index, {name: None for name in outputs}, {name: reason for name in outputs})
    for name, groups in outputs.items():
        for indices, values, reason in groups:
            for index, value in zip(indices, values):
                row = rows.setdefault(index, ScoredImage(index, {}, {}, index in cropped))
                row.values[name] = value
                row.reasons[name] = reason
    return [rows[i] for i in sorted(rows)]


def score_images(
    items: Sequence[tuple[Path, int]],
    scorers: Mapping[str, Scorer],
    spec: DecodeSpec,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    workers: int = 0,
    amp: str | None = None,
    progress: Callable[[int], None] | None = None,
    keys: Sequence[str] | None = None,
    batches: Sequence[Sequence[int]] | None = None,
) -> Iterator[list[ScoredImage]]:
    """Decode `items` (path, label) under `spec` and yield, batch after batch, each image's outputs.

    `keys`: each item's path relative to its suite root (seeds a random perturbation of the spec).
    `batches`: which items go through the model together, as lists of positions in `items` (default:
    consecutive runs of `batch_size`). A batch's composition can move a logit in its last bit (CPU and
    cuDNN kernels differ by batch shape), so the runner keeps it the same however the work is split.
    `progress(n)` is called with the number of images each batch finished (for a progress bar)."""
    device = torch.device(device)
    if not items:
        return
    dataset = ImageDataset(items, spec, keys)
    batching = {"batch_size": batch_size} if batches is None else {"batch_sampler": [list(b) for b in batches]}
    loader = torch.utils.data.DataLoader(
        dataset, num_workers=workers, collate_fn=collate_by_size,
        pin_memory=device.type == "cuda", persistent_workers=False, **batching,
    )
    with torch.inference_mode(), autocast_context(device, amp):
        for batch in loader:
            outputs: dict[str, list] = {name: [] for name in scorers}
            for indices, pixels in batch.groups:
                pixels = pixels.to(device, non_blocking=True)
                for name, scorer in scorers.items():
                    values, reason = _score_group(scorer, pixels)
                    outputs[name].append((indices, values, reason))
            rows = _rows(batch, outputs)
            if progress is not None:
                progress(len(rows))
            yield rows
