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
import sys
import time

from bench.api import PROTOCOLS, WEIGHTS_RULE
from bench.errors import BenchError

METHODS = ("gradcam", "gradcam++", "scorecam")  # bench.engine.cam.CAM_METHODS, without importing torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    parser.add_argument("--detector", required=True, help="NAME[,NAME...]: the panel shows them in this order")
    parser.add_argument("--weights", metavar="WEIGHTS", help=f"{WEIGHTS_RULE} (default: each detector's own)")
    parser.add_argument("--output", required=True, help="folder for the overlays, maps, panels and explain.json")
    parser.add_argument("--method", choices=METHODS, default="gradcam")
    parser.add_argument("--target", choices=("predicted", "fake", "real"), default="predicted",
                        help="the class each map explains (default: the detector's own verdict)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="resize256",
                        help="decode as the paper's resize256 suites (default) or at native size")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--json", action="store_true", help="print explain.json instead of the table")


def run(args: argparse.Namespace) -> int:
    from bench import api

    def print_skip(path, detector, reason) -> None:
        print(f"skipped {api.show_path(path)} for {detector}: {reason}", file=sys.stderr)

    started = time.perf_counter()
    document = api.explain(args.paths, args.detector, weights=args.weights, output=args.output,
                           method=args.method, target=args.target, protocol=args.protocol, device=args.device,
                           on_skip=print_skip, progress=not getattr(args, "quiet", False))
    records = document["images"]
    if args.json:
        print(json.dumps(document, indent=1))
    else:
        print_tables(document)
        explained = sum(1 for record in records if record["detectors"])
        print(f"done: {explained} of {len(records)} images explained by {len(document['detectors'])} detector(s) in "
              f"{time.perf_counter() - started:.1f} s; wrote their folders and explain.json under {args.output}")
    if not any(r["detectors"] for r in records):
        raise BenchError("none of the given files could be explained (see the reasons above)")
    return 0


def print_tables(document: dict) -> None:
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
        table = [[name, str(v["n_masks"]), _format_pct(v["energy_in_mask"]), _format_pct(v["pointing_game"]), _format_pct(v["mask_area"])]
                 for name, v in localisation.items()]
        print(format_table(["detector", "masks", "energy in mask %", "pointing game %", "mask area %"], table,
                           [False, True, True, True, True]))


def _format_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"
