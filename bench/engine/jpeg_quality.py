"""JPEG quality estimated from a file's quantisation tables (read from the header; no pixel is decoded).

The estimate is the libjpeg (IJG) quality whose scaled Annex K luminance table matches the file's exactly,
or else the nearest one (sum of absolute differences), marked approximate: cameras and editors use their
own tables. `bench audit` reports it per class; `--align match-real-quality` (bench.engine.align) draws
each fake's re-encoding quality from the real images' estimates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

# ITU-T T.81 Annex K, table K.1 (luminance), natural order: the base of libjpeg's quality scaling
_ANNEX_K_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)


@cache
def ijg_luma_tables() -> np.ndarray:
    """[100, 64]: row q-1 is libjpeg's luminance table at quality q (jpeg_quality_scaling, baseline)."""
    rows = []
    base = np.array(_ANNEX_K_LUMA, dtype=np.int64)
    for quality in range(1, 101):
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        rows.append(np.clip((base * scale + 50) // 100, 1, 255))
    return np.stack(rows)


def estimate_jpeg_quality(luma_table: Sequence[int]) -> tuple[int, bool]:
    """(quality 1..100, exact?) from a luminance quantisation table in natural order."""
    table = np.asarray(list(luma_table), dtype=np.int64)
    if table.shape != (64,):
        raise ValueError(f"a quantisation table has 64 entries, not {table.size}")
    distance = np.abs(ijg_luma_tables() - table).sum(axis=1)
    best = int(distance.argmin())
    return best + 1, bool(distance[best] == 0)


def file_jpeg_quality(path: str | Path) -> int | None:
    """The estimated quality of a JPEG file (by its content, not its extension); None for any other format
    or an unreadable file."""
    try:
        with Image.open(path) as img:
            tables = getattr(img, "quantization", None)
            if img.format != "JPEG" or not tables:
                return None
            return estimate_jpeg_quality(tables[min(tables)])[0]
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        log.debug("cannot read %s: %s", path, error)
        return None
