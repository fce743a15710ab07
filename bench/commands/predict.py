"""Score image files or folders with one detector under the paper's test preprocessing.

Default protocol `resize256`: PIL RGB -> Resize((256, 256)) bilinear -> ToTensor -> ImageNet Normalize,
as the LFM and NPR test scripts do. `--protocol native` skips the resize; odd sizes are cropped to even
(the NPR residual needs even sizes) and the output says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.errors import BenchError
from bench.protocol import PROTOCOLS, protocol_resize
from bench.suites import IMAGE_EXTENSIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    parser.add_argument("--detector", required=True, help="a registered detector (see `bench list detectors`)")
    parser.add_argument("--weights", help="NAME (e.g. lfm:official, demo) or PATH; default: the detector's own")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="resize256")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true", help='one JSON object per image: {"path", "logit", "prob"}')


def collect_images(paths: list[str]) -> list[Path]:
    """Files as given (any extension: the decoder decides), folders searched recursively for images."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        elif path.is_file():
            found.append(path)
        else:
            raise BenchError(f"{raw} does not exist")
    if not found:
        raise BenchError(f"no image files found in {', '.join(paths)}")
    return found


def run(args: argparse.Namespace) -> int:
    import torch

    from bench.data import DecodeSpec, ImageDataset, collate_by_size
    from bench.inference import pick_device, prepare_scorer
    from bench.metrics import probability
    from bench.runner import score_group
    from detectors import load_detector

    if args.batch_size < 1:
        raise BenchError("--batch-size must be at least 1")
    files = collect_images(args.paths)
    loaded = load_detector(args.detector, args.weights)
    device = pick_device(args.device)
    scorer = prepare_scorer(loaded.model, loaded.detector.preprocessing, device)
    dataset = ImageDataset(
        [(f, -1) for f in files], DecodeSpec.for_detector(protocol_resize(args.protocol), loaded.detector.preprocessing)
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, collate_fn=collate_by_size)
    results: dict[int, dict] = {}
    skipped: list[tuple[Path, str]] = []
    with torch.inference_mode():
        for batch in loader:
            for index, reason in batch.failed:
                skipped.append((files[index], reason))
            cropped = set(batch.cropped)
            for indices, pixels in batch.groups:
                logits, reason = score_group(scorer, pixels.to(device))
                if reason is not None:
                    skipped.extend((files[index], reason) for index in indices)
                    continue
                for index, logit in zip(indices, logits):
                    results[index] = {
                        "path": str(files[index]),
                        "logit": logit,
                        "prob": probability(logit),
                        "cropped": index in cropped,
                    }
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    ordered = [results[i] for i in sorted(results)]
    if args.json:
        for row in ordered:
            print(json.dumps({"path": row["path"], "logit": row["logit"], "prob": row["prob"]}))
    else:
        print_table(ordered, loaded, args.protocol)
    if not ordered:
        raise BenchError("none of the given files could be scored (see the reasons above)")
    return 0


def print_table(rows: list[dict], loaded, protocol: str) -> None:
    from bench.textable import format_table

    print(f"# {loaded.detector.display_name} with weights {loaded.weights.label} "
          f"(sha256 {loaded.weights.sha256[:12]}), protocol {protocol}")
    table_rows = [
        [r["path"], f"{r['logit']:.4f}", f"{r['prob']:.4f}", "fake" if r["prob"] > 0.5 else "real",
         "cropped to even size" if r["cropped"] else ""]
        for r in rows
    ]
    print(format_table(["path", "logit", "prob", "verdict", "note"], table_rows, [False, True, True, False, False]))
