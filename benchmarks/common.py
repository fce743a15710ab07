"""What the benchmark scripts share: the machine description, test images, weights, a results table."""

from __future__ import annotations

import os
import statistics
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.analyses.profile import cpu_model
from bench.outputs.textable import format_table
from detectors import export_state_dict, get_detector

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_LFM = Path(os.environ.get("BENCH_SHARED") or REPO.parent / "shared") / "weights" / "lfm_official_bs_model.pth"


def describe_machine() -> str:
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"{torch.get_num_threads()} intra-op threads; load average {load} (1/5/15 min; other work on the "
        "machine slows every variant, which is why variants are timed side by side)"
    )


def lfm_state_dict() -> tuple[dict[str, torch.Tensor], str]:
    """Official-named LFM weights: the official checkpoint where ../shared has it, else a random init.

    Speed does not depend on the values; the official weights only make the score comparison stricter
    (a random init gives nearly constant logits)."""
    detector = get_detector("lfm")
    if OFFICIAL_LFM.is_file():
        return torch.load(OFFICIAL_LFM, map_location="cpu", weights_only=True), f"official checkpoint {OFFICIAL_LFM}"
    torch.manual_seed(0)
    return export_state_dict(detector.build(), detector), "random init (seed 0; no ../shared checkpoint found)"


def write_images(folder: Path, count: int, sizes, seed: int = 0) -> None:
    """``count`` PNGs split over ``folder/0_real`` and ``folder/1_fake``; ``sizes(rng)`` -> (width, height).

    Content: coarse random blobs plus pixel noise, so that files compress and decode like pictures more
    than pure noise does, and the NPR residual is not zero."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = "0_real" if index % 2 == 0 else "1_fake"
        width, height = sizes(rng)
        coarse = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR), dtype=np.int16)
        image = np.clip(image + rng.integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
        path = folder / label / f"{index:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)


def median(values) -> float:
    return statistics.median(values)


def ratio_table(rows: list[tuple[str, float]], unit: str, baseline: str) -> str:
    """Rows of (variant, figure) with each figure's ratio to the ``baseline`` row's."""
    base = dict(rows)[baseline]
    body = [[name, f"{value:.1f}", f"{value / base:.2f}x"] for name, value in rows]
    return format_table(["variant", unit, f"vs {baseline}"], body, [False, True, True])
