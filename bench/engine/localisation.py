"""Localisation metrics: how well a detector's map of a fake image matches the image's forgery mask.

For suites with masks (`1_fake_masks`, see bench.engine.suites), per fake image that has a mask:
- pixel AUC: ROC-AUC of the map's values as a score for "this pixel is forged" against the mask
  (scikit-learn's roc_auc_score), per image, then averaged; undefined for an all-forged or all-clean
  mask;
- IoU at IOU_THRESHOLD: |map >= t AND mask| / |map >= t OR mask|;
- energy inside the mask and the pointing-game hit (bench.engine.map_metrics: the share of the map's
  mass inside the mask; whether the map's maximum lies inside it).
Each is averaged per generator over its masked fakes (undefined values left out), and over generators
for the suite's mean, like the detection metrics.

Where the map comes from: a detector that declares `interpretation` (a model method, LAE's
`interpret`) gives its own map, in [0, 1] as the model means it; any other detector gives Grad-CAM on
its declared `cam_target_layer`, explaining the "fake" class (where the evidence of forgery is), min-max
scaled per image by pytorch-grad-cam. So the IoU threshold means "probability of forgery >= 0.5" for
LAE and "at least half the map's maximum" for Grad-CAM; the other three metrics do not depend on the
map's scale.

Images are decoded exactly as scoring decodes them (DecodeSpec.for_detector, the run's perturbation
included) and masks follow the same geometry (DecodeSpec.decode_mask: a perturbation's resize or crop
too). Masks are binarised by one rule (bench.engine.decode.binarise_mask, docs/conventions.md); masks that
are not 0/255 grey are warned about and noted in the block's `mask_notes`.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from bench.engine.map_metrics import energy_in_mask, pointing_hit

log = logging.getLogger(__name__)

IOU_THRESHOLD = 0.5
LOCALISATION_METRICS = ("pixel_auc", "iou", "energy", "pointing")
"""Names as stored in metrics.json (under "localisation") and shown by bench run."""
DISPLAY = {"pixel_auc": "pixAUC", "iou": f"IoU@{IOU_THRESHOLD}", "energy": "energy", "pointing": "pointing"}


def pixel_auc(heat: np.ndarray, mask: np.ndarray) -> float:
    """ROC-AUC of the map's values against the mask's pixels; NaN when the mask is all one class."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(mask, dtype=bool).ravel()
    if truth.all() or not truth.any():
        return math.nan
    return float(roc_auc_score(truth, np.asarray(heat, dtype=np.float64).ravel()))


def iou(heat: np.ndarray, mask: np.ndarray, threshold: float = IOU_THRESHOLD) -> float:
    """Intersection over union of {map >= threshold} and the mask; NaN when both are empty."""
    predicted = np.asarray(heat) >= threshold
    truth = np.asarray(mask, dtype=bool)
    union = int(np.count_nonzero(predicted | truth))
    if union == 0:
        return math.nan
    return int(np.count_nonzero(predicted & truth)) / union


def image_scores(heat: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """The four metrics of one map against one mask (same shape)."""
    return {"pixel_auc": pixel_auc(heat, mask), "iou": iou(heat, mask), "energy": energy_in_mask(heat, mask),
            "pointing": float(pointing_hit(heat, mask))}


def summarise(rows: Sequence[dict[str, float]]) -> dict[str, float | int | None]:
    """Mean of each metric over images (NaN values left out; None when none is defined) and n_masks."""
    summary: dict[str, float | int | None] = {"n_masks": len(rows)}
    for name in LOCALISATION_METRICS:
        values = [r[name] for r in rows if not math.isnan(r[name])]
        summary[name] = float(np.mean(values)) if values else None
    return summary


def mean_over_generators(per_generator: dict[str, dict]) -> dict[str, float | int | None]:
    summary: dict[str, float | int | None] = {"n_masks": sum(g["n_masks"] for g in per_generator.values())}
    for name in LOCALISATION_METRICS:
        values = [g[name] for g in per_generator.values() if g.get(name) is not None]
        summary[name] = float(np.mean(values)) if values else None
    return summary


class MapMaker:
    """Maps of one loaded detector: its own interpretation when it declares one, else Grad-CAM."""

    def __init__(self, loaded, device: torch.device | str = "cpu") -> None:
        self.detector = loaded.detector
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        self.layer = None
        if self.detector.interpretation is None:
            from detectors.layers import cam_target

            self.layer = cam_target(self.detector, self.model)

    @property
    def source(self) -> str:
        return f"interpretation ({self.detector.interpretation})" if self.layer is None else \
            f"Grad-CAM on {self.detector.cam_target_layer} (fake class)"

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        """uint8 [3, H, W] -> float map [H, W]."""
        x = self.detector.preprocessing.normalize(pixels.unsqueeze(0).to(self.device))
        if self.layer is None:
            with torch.no_grad():
                heat = getattr(self.model, self.detector.interpretation)(x)
            return heat[0].float().cpu().numpy()
        from bench.engine.cam import class_activation_maps

        return class_activation_maps(self.model, self.layer, x, method="gradcam", target="fake").maps[0]


def localise_suite(loaded, root: Path, suite, *, device: torch.device | str = "cpu", limit: int | None = None,
                   progress: bool = True, own_protocol: bool = False, sample: int | None = None,
                   perturbation=None) -> dict | None:
    """Localisation metrics of one detector on one suite: {"generators": {name: summary}, "mean": summary,
    "source": ..., "iou_threshold": ..., "perturbation": ..., "mask_notes": [...]}; None when no generator
    of the suite carries masks. Images are decoded as scoring decoded them, under the run's perturbation
    too (seeded by the same relative path), and each mask follows its image's geometry (`warp_mask`).
    Masks that are not 0/255 grey (0/1, colour, other levels, all zero) are read by `binarise_mask`'s rule
    and warned about; the warnings are kept in `mask_notes`."""
    from tqdm import tqdm

    from bench.engine.decode import MASK_KINDS, DecodeSpec, UnusableImage
    from bench.engine.files import relative_text
    from bench.engine.perturb import parse
    from bench.engine.suites import discover, scored_generators, univfd_sample

    scored, _ = scored_generators(suite, discover(root, suite))  # the generators the run scored
    generators = [g for g in scored if g.has_masks and g.masks]
    if sample is not None:  # the fakes the scores were computed on (`EvalConfig.sample`)
        for generator in generators:
            drawn = set(univfd_sample(generator, sample).fake)
            generator.masks = {path: mask for path, mask in generator.masks.items() if path in drawn}
    if not generators:
        return None
    maps = MapMaker(loaded, device)
    perturbation = parse(perturbation)
    spec = DecodeSpec.for_detector(suite.resize, loaded.preprocessing, own_protocol=own_protocol,
                                   perturbation=perturbation)
    per_generator: dict[str, dict] = {}
    notes: list[str] = []
    total = sum(min(len(g.masks), limit or len(g.masks)) for g in generators)
    with tqdm(total=total, desc=f"{loaded.detector.name} localisation", unit="img", leave=False, file=sys.stderr,
              disable=not progress or None) as bar:
        for generator in generators:
            rows = []
            kinds: dict[str, list[str]] = {}
            for path in [p for p in generator.fake if p in generator.masks][:limit]:
                bar.update(1)
                try:
                    decoded = spec.decode(path, relative_text(path, root))
                    mask, kind = spec.decode_mask_kind(generator.masks[path], decoded.original_size)
                except UnusableImage as error:
                    log.warning("%s: left out of localisation: %s", path, error.reason)
                    continue
                kinds.setdefault(kind, []).append(relative_text(generator.masks[path], root))
                rows.append(image_scores(maps(decoded.pixels), mask.numpy()))
            for kind, paths in kinds.items():
                if kind != "0/255":
                    note = (f"{suite.name}/{generator.name}: {len(paths)} of {len(rows)} masks are {MASK_KINDS[kind]}, "
                            f"e.g. {paths[0]}")
                    log.warning("%s", note)
                    notes.append(note)
            per_generator[generator.name] = summarise(rows)
    return {"generators": per_generator, "mean": mean_over_generators(per_generator), "source": maps.source,
            "iou_threshold": IOU_THRESHOLD, "perturbation": None if perturbation is None else perturbation.spec,
            "mask_notes": notes}


def localise_run(loaded, suites, *, device: torch.device | str = "cpu", limit: int | None = None,
                 progress: bool = True, own_protocol: bool = False, sample: int | None = None,
                 perturbation=None) -> dict[str, dict]:
    """Suite name -> `localise_suite` block, for the resolved suites that carry masks."""
    blocks = {}
    for resolved in suites:
        block = localise_suite(loaded, resolved.root, resolved.suite, device=device, limit=limit, progress=progress,
                               own_protocol=own_protocol, sample=sample, perturbation=perturbation)
        if block is not None:
            blocks[resolved.suite.name] = block
    return blocks
