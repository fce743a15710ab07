"""Grad-CAM maps of several detectors on image files, each decoded exactly as scoring decodes it.

Per image and detector: ``DecodeSpec.for_detector(resize, preprocessing)`` gives the uint8 pixels the
detector would score, ``Preprocessing.normalize`` the model input, and pytorch-grad-cam the map on the
declared target layer (:mod:`detectors.layers`). Images go one at a time: explanations need a backward
pass per image (or, for Score-CAM, one forward pass per channel), and files of any size mix freely.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.engine.cam import class_activation_maps
from bench.engine.decode import DecodeSpec, UnusableImage
from bench.engine.files import path_text
from bench.engine.map_metrics import energy_in_mask, pointing_hit
from bench.engine.metrics import probability
from bench.engine.suites import LABEL_FOLDERS, mask_path
from detectors import LoadedDetector
from detectors.layers import cam_target

log = logging.getLogger(__name__)


def true_label(path: Path) -> int | None:
    """1 under a ``1_fake`` folder, 0 under ``0_real`` (the innermost one wins), None elsewhere."""
    for part in reversed(path.parts[:-1]):
        if part in LABEL_FOLDERS:
            return LABEL_FOLDERS[part]
    return None


@dataclass
class DetectorMap:
    pixels: np.ndarray
    """uint8 [H, W, 3]: what the detector saw."""
    cam: np.ndarray
    """float32 [H, W] in [0, 1]."""
    logit: float
    mask: np.ndarray | None = None
    """bool [H, W] under the same geometry, when the image has a ground-truth mask."""

    @property
    def prob(self) -> float:
        return probability(self.logit)

    @property
    def energy(self) -> float | None:
        return None if self.mask is None else energy_in_mask(self.cam, self.mask)

    @property
    def hit(self) -> bool | None:
        return None if self.mask is None else pointing_hit(self.cam, self.mask)


@dataclass
class Explanation:
    path: Path
    truth: int | None
    maps: dict[str, DetectorMap] = field(default_factory=dict)
    """Detector name -> its map; a detector that could not take the image is absent."""
    reasons: dict[str, str] = field(default_factory=dict)
    """Detector name -> why it has no map of this image."""


def explain_images(
    loaded: Sequence[LoadedDetector], paths: Sequence[Path], *, resize: int | None, method: str = "gradcam",
    target: str = "predicted", device: torch.device | str = "cpu", own_protocol: bool = False,
) -> Iterator[Explanation]:
    device = torch.device(device)
    models = []
    for item in loaded:
        model = item.model.to(device).eval()
        models.append((item, model, cam_target(item.detector, model)))
    for path in paths:
        path = Path(path)
        explanation = Explanation(path, true_label(path))
        mask_file = mask_path(path)
        if mask_file is not None and not mask_file.is_file():
            mask_file = None
        for item, model, layer in models:
            name = item.detector.name
            spec = DecodeSpec.for_detector(resize, item.detector.preprocessing, own_protocol=own_protocol)
            try:
                decoded = spec.decode(path)
            except UnusableImage as error:
                explanation.reasons[name] = error.reason
                continue
            pixels = decoded.pixels
            inputs = item.detector.preprocessing.normalize(pixels.unsqueeze(0).to(device))
            try:
                result = class_activation_maps(model, layer, inputs, method=method, target=target)
            except (ValueError, RuntimeError) as error:  # e.g. too small for Top-K at native size
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                explanation.reasons[name] = f"cannot be explained at {pixels.shape[2]}x{pixels.shape[1]}: {first_line}"
                continue
            mask = None
            if mask_file is not None:
                try:
                    mask = spec.decode_mask(mask_file, decoded.original_size).numpy()
                except UnusableImage as error:
                    log.warning("%s: mask %s not used: %s", path, mask_file, error.reason)
            explanation.maps[name] = DetectorMap(
                pixels.permute(1, 2, 0).numpy(), result.maps[0], float(result.logits[0]), mask
            )
        yield explanation


def localisation_summary(explanations: Sequence[Explanation], names: Sequence[str]) -> dict[str, dict]:
    """Per detector over the images that have a mask: mean energy inside it and pointing-game hit rate."""
    summary = {}
    for name in names:
        scored = [e.maps[name] for e in explanations if name in e.maps and e.maps[name].mask is not None]
        energies = [m.energy for m in scored if m.energy is not None and not np.isnan(m.energy)]
        summary[name] = {
            "n_masks": len(scored),
            "energy_in_mask": float(np.mean(energies)) if energies else None,
            "pointing_game": float(np.mean([m.hit for m in scored])) if scored else None,
            "mask_area": float(np.mean([m.mask.mean() for m in scored])) if scored else None,
        }
    return summary


def image_folder_names(files: list[Path]) -> list[str]:
    """A readable, unique folder name per image: its path below the common parent, `/` -> `__`."""
    parents = [str(f.parent.absolute()) for f in files]
    common = Path(os.path.commonpath(parents)) if parents else Path(".")
    names, seen = [], {}
    for f in files:
        relative = f.absolute().relative_to(common).with_suffix("")
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(relative.parts)) or "image"
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(name if count == 0 else f"{name}-{count + 1}")
    return names


def explain_files(
    paths, detectors: str, *, weights: str | None = None, output: str | Path, method: str = "gradcam",
    target: str = "predicted", protocol: str = "resize256", device: str = "auto", on_skip=None,
    progress: bool = True,
) -> dict:
    """Class-activation maps of each detector on image files (or folders of them), each image decoded as
    scoring decodes it. Writes under `output`, per image, `<image>/<detector>.png` (overlay),
    `<image>/<detector>.npy` (the map), `<image>/panel.png` (input | detector a | ...) and `explain.json`,
    whose content is returned. `on_skip(path, detector, reason)` hears each image a detector could not
    explain; no image explained at all is an error. `progress`: a bar with an ETA on stderr (on a terminal)."""
    import sys

    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from bench.engine.evaluation import collect_images, weights_per_detector
    from bench.engine.inference import pick_device
    from bench.engine.protocol import protocol_resize
    from bench.engine.store import atomic_write_json, json_safe, require_writable_folder
    from bench.outputs.drawing import Verdict, cam_panel, overlay, save
    from detectors import get_detectors, load_detector

    output = require_writable_folder(output, "explanations")  # before any model is loaded
    files = collect_images(paths)
    named = get_detectors(detectors)
    loaded = [load_detector(d, w) for d, w in zip(named, weights_per_detector(weights, named))]
    names = [item.detector.name for item in loaded]
    display = {item.detector.name: item.detector.display_name for item in loaded}
    torch_device = pick_device(device)
    folders = image_folder_names(files)
    records, explanations = [], []
    stream = explain_images(loaded, files, resize=protocol_resize(protocol), method=method, target=target,
                            device=torch_device)
    bar = tqdm(total=len(files), unit="img", desc=f"explaining ({method}, {', '.join(names)})", file=sys.stderr,
               disable=not progress or None)
    for folder_name, explanation in zip(folders, stream):
        bar.update(1)
        folder = output / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        record = {"path": path_text(explanation.path), "folder": folder_name, "truth": explanation.truth,
                  "detectors": {}, "skipped": explanation.reasons}
        for name, found in explanation.maps.items():
            np.save(folder / f"{name}.npy", found.cam)
            Image.fromarray(overlay(found.pixels, found.cam)).save(folder / f"{name}.png")
            record["detectors"][name] = {
                "logit": found.logit, "prob": found.prob, "pred": int(found.prob > 0.5),
                "map": f"{folder_name}/{name}.npy", "overlay": f"{folder_name}/{name}.png",
                "energy_in_mask": found.energy, "pointing_hit": found.hit,
            }
        for name, reason in explanation.reasons.items():
            if on_skip is not None:
                on_skip(explanation.path, name, reason)
        if explanation.maps:
            shown = [n for n in names if n in explanation.maps]
            first = explanation.maps[shown[0]]
            Image.fromarray(first.pixels).save(folder / "input.png")
            verdicts = [Verdict(display[n], explanation.maps[n].prob) for n in shown]
            figure = cam_panel(first.pixels, [overlay(explanation.maps[n].pixels, explanation.maps[n].cam)
                                              for n in shown], explanation.truth, verdicts,
                               title=f"{path_text(explanation.path.name)} - {method}, {protocol}")
            save(figure, folder / "panel.png")
            record["panel"] = f"{folder_name}/panel.png"
        records.append(record)
        explanations.append(explanation)
    bar.close()
    document = {
        "method": method, "target": target, "protocol": protocol, "device": str(torch_device),
        "detectors": {item.detector.name: {"weights": item.weights.label, "sha256": item.weights.sha256,
                                           "cam_target_layer": item.detector.cam_target_layer} for item in loaded},
        "images": records,
        "localisation": localisation_summary(explanations, names),
    }
    atomic_write_json(output / "explain.json", json_safe(document))
    return json_safe(document)
