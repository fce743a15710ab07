"""Score image files or folders with one detector under the paper's test preprocessing.

Default protocol `resize256`: PIL RGB -> Resize((256, 256)) bilinear -> ToTensor -> ImageNet Normalize,
as the LFM and NPR test scripts do. `--protocol native` skips the resize; odd sizes are cropped to even
(the NPR residual needs even sizes) and the output says so.
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.api import PROTOCOLS
from bench.errors import BenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    parser.add_argument("--detector", required=True, help="a registered detector (see `bench list detectors`)")
    parser.add_argument("--weights", help="NAME (e.g. lfm:official, demo) or PATH; default: the detector's own")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="resize256")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true", help='one JSON object per image: {"path", "logit", "prob"}')


def run(args: argparse.Namespace) -> int:
    from bench import api

    result = api.predict(args.detector, args.paths, weights=args.weights, protocol=args.protocol,
                         device=args.device, batch_size=args.batch_size, progress=not getattr(args, "quiet", False))
    for path, reason in result.skipped:
        print(f"skipped {api.show_path(path)}: {reason}", file=sys.stderr)
    if args.json:
        for p in result.predictions:
            print(json.dumps({"path": p.path, "logit": p.logit, "prob": p.prob}))
    else:
        print_table(result)
    if not result.predictions:
        raise BenchError("none of the given files could be scored (see the reasons above)")
    if not getattr(args, "quiet", False):
        print(f"done: {len(result.predictions):,} of {len(result.predictions) + len(result.skipped):,} files scored "
              f"({len(result.skipped)} skipped) with {result.detector.detector.name} "
              f"({result.detector.weights.label}) in {result.seconds:.1f} s", file=sys.stderr)
    return 0


def print_table(result) -> None:
    from bench.outputs.textable import format_table

    loaded = result.detector
    print(f"# {loaded.detector.display_name} with weights {loaded.weights.label} "
          f"(sha256 {loaded.weights.sha256[:12]}), protocol {result.protocol}")
    from bench.api import show_path

    rows = [[show_path(p.path), f"{p.logit:.4f}", f"{p.prob:.4f}", p.verdict, "cropped to even size" if p.cropped else ""]
            for p in result.predictions]
    print(format_table(["path", "logit", "prob", "verdict", "note"], rows, [False, True, True, False, False]))
