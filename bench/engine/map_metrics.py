"""How well a map points at a known forged region: the two standard numbers, from a map and a mask.

- Energy inside the mask: the share of the map's total mass that falls inside the forged region (the
  "energy-based pointing game" of Score-CAM, Wang et al., CVPR-W 2020, section 4.2). 1 = all of it; a
  map spread evenly scores the mask's area fraction, which is reported beside it as the chance level.
- Pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016): a hit when
  the map's maximum lies inside the region. Here with no tolerance margin, and the first maximum in raster
  order when several pixels tie (numpy's argmax).

Masks are a suite's data (``bench.engine.suites.mask_path``: ``1_fake_masks/<stem>.png`` beside ``1_fake``),
decoded onto their image's pixels by ``DecodeSpec.decode_mask``.
"""

from __future__ import annotations

import numpy as np


def energy_in_mask(cam_map: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's mass inside the mask; NaN for an all-zero map (it points nowhere)."""
    _check_shapes(cam_map, mask)
    total = float(np.sum(cam_map, dtype=np.float64))
    if total <= 0:
        return float("nan")
    return float(np.sum(cam_map[mask], dtype=np.float64)) / total


def pointing_hit(cam_map: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the map's (first) maximum lies inside the mask."""
    _check_shapes(cam_map, mask)
    row, col = np.unravel_index(int(np.argmax(cam_map)), cam_map.shape)
    return bool(mask[row, col])


def _check_shapes(cam_map: np.ndarray, mask: np.ndarray) -> None:
    if cam_map.shape != mask.shape:
        raise ValueError(f"map {cam_map.shape} and mask {mask.shape} differ in size")
