"""Class-activation maps: where each detector looks when it calls an image real or fake.

For every image and detector: the image decoded exactly as scoring decodes it, the map (pytorch-grad-cam:
Grad-CAM, Grad-CAM++ or Score-CAM) on the layer the detector declares (`cam_target_layer`), explaining the
detector's own verdict by default. Written under --output, per image: `<image>/<detector>.png` (overlay),
`<image>/<detector>.npy` (the map, float32 [H, W] in [0, 1]), `<image>/panel.png` (input | detector a |
detector b ..., with the true label from a `0_real`/`1_fake` folder and each predicted label), and
`explain.json` with every verdict. Images with a ground-truth mask (`1_fake_masks/<stem>.png` beside
`1_fake/`) also get the energy inside the mask and the pointing-game hit, summed up per detector.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from bench.engine.protocol import PROTOCOLS
from bench.errors import BenchError

METHODS = ("gradcam", "gradcam++", "scorecam")  # bench.engine.cam.CAM_METHODS, without importing torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    parser.add_argument("--detector", required=True, help="NAME[,NAME...]: the panel shows them in this order")
    parser.add_argument("--weights", help="NAME, tag or PATH for every detector, or a comma list, one per detector "
                                          "(default: each detector's own)")
    parser.add_argument("--output", required=True, help="folder for the overlays, maps, panels and explain.json")
    parser.add_argument("--method", choices=METHODS, default="gradcam")
    parser.add_argument("--target", choices=("predicted", "fake", "real"), default="predicted",
                        help="the class each map explains (default: the detector's own verdict)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="resize256",
                        help="decode as the paper's resize256 suites (default) or at native size")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--json", action="store_true", help="print explain.json instead of the table")


def image_folder_names(files: list[Path]) -> list[str]:
    """A readable, unique folder name per image: its path below the common parent, `/` -> `__`."""
    import os

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


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from bench.analyses.explain import explain_images, localisation_summary
    from bench.engine.evaluation import collect_images, weights_per_detector
    from bench.engine.inference import pick_device
    from bench.engine.protocol import protocol_resize
    from bench.engine.store import atomic_write_json, json_safe
    from bench.outputs.drawing import Verdict, cam_panel, overlay, save
    from detectors import get_detectors, load_detector

    files = collect_images(args.paths)
    detectors = get_detectors(args.detector)
    loaded = [load_detector(d, w) for d, w in zip(detectors, weights_per_detector(args.weights, detectors))]
    names = [item.detector.name for item in loaded]
    device = pick_device(args.device)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    folders = image_folder_names(files)
    import numpy as np

    records, explanations = [], []
    stream = explain_images(loaded, files, resize=protocol_resize(args.protocol), method=args.method,
                            target=args.target, device=device)
    for folder_name, explanation in zip(folders, stream):
        folder = output / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        record = {"path": str(explanation.path), "folder": folder_name, "truth": explanation.truth,
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
            print(f"skipped {explanation.path} for {name}: {reason}", file=sys.stderr)
        if explanation.maps:
            shown = [n for n in names if n in explanation.maps]
            first = explanation.maps[shown[0]]
            Image.fromarray(first.pixels).save(folder / "input.png")
            verdicts = [Verdict(display_name(loaded, n), explanation.maps[n].prob) for n in shown]
            figure = cam_panel(first.pixels, [overlay(explanation.maps[n].pixels, explanation.maps[n].cam)
                                              for n in shown], explanation.truth, verdicts,
                               title=f"{explanation.path.name} - {args.method}, {args.protocol}")
            save(figure, folder / "panel.png")
            record["panel"] = f"{folder_name}/panel.png"
        records.append(record)
        explanations.append(explanation)
    document = {
        "method": args.method, "target": args.target, "protocol": args.protocol, "device": str(device),
        "detectors": {item.detector.name: {"weights": item.weights.label, "sha256": item.weights.sha256,
                                           "cam_target_layer": item.detector.cam_target_layer} for item in loaded},
        "images": records,
        "localisation": localisation_summary(explanations, names),
    }
    atomic_write_json(output / "explain.json", json_safe(document))
    if args.json:
        print(json.dumps(json_safe(document), indent=1))
    else:
        print_tables(document, loaded)
        print(f"wrote {len(records)} image folders and explain.json under {output}")
    if not any(r["detectors"] for r in records):
        raise BenchError("none of the given files could be explained (see the reasons above)")
    return 0


def display_name(loaded, name: str) -> str:
    return next(item.detector.display_name for item in loaded if item.detector.name == name)


def print_tables(document: dict, loaded) -> None:
    from bench.outputs.textable import format_table

    names = list(document["detectors"])
    label = {0: "real", 1: "fake", None: "?"}
    rows = []
    for record in document["images"]:
        cells = [record["folder"], label[record["truth"]]]
        for name in names:
            found = record["detectors"].get(name)
            cells.append("skipped" if found is None else f"{label[found['pred']]} ({found['prob']:.2f})")
        rows.append(cells)
    print(format_table(["image", "true", *names], rows, [False] * (2 + len(names))))
    localisation = document["localisation"]
    if any(v["n_masks"] for v in localisation.values()):
        print("\nlocalisation on images with a ground-truth mask:")
        table = [[name, str(v["n_masks"]), _pct(v["energy_in_mask"]), _pct(v["pointing_game"]), _pct(v["mask_area"])]
                 for name, v in localisation.items()]
        print(format_table(["detector", "masks", "energy in mask %", "pointing game %", "mask area %"], table,
                           [False, True, True, True, True]))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"
