"""Helpers shared by several test modules (not fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_suite(root: Path, generators: dict[str, int], size=(72, 88), seed=0) -> Path:
    """A folder suite: generators x {0_real, 1_fake} x n random images (fakes get a 2x2 block pattern)."""
    rng = np.random.default_rng(seed)
    for generator, n in generators.items():
        for label in ("0_real", "1_fake"):
            folder = root / generator / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = size[0] + 2 * (i % 3), size[1] + 4 * (i % 2)
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                if label == "1_fake":  # nearest-neighbour up-sampling traces
                    pixels = pixels[::2, ::2].repeat(2, 0).repeat(2, 1)[:h, :w]
                Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")
    return root
