"""Regenerate a figure of the paper from its config. `bench figure visual`: the Visualization figure
(Grad-CAM of NPR vs LFM on a fake and a real image; t-SNE of their pooled features on two generators).

With the paper's data under the data root (UniversalFakeDetect's dalle, DiffusionForensics' vqdiffusion)
it uses those and each detector's default weights; without it, the demo suites and the bundled demo
weights, and the figure's footer says so. Writes `<name>.pdf`, `<name>.png` and `<name>.json` (the
numbers: predictions on the two images, silhouette and 10-NN accuracy per t-SNE panel) under --output.
"""

from __future__ import annotations

import argparse
import json

FIGURES = ("visual",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.api import WEIGHTS_RULE

    parser.add_argument("name", choices=FIGURES, help="which figure")
    parser.add_argument("--output", default="figures", help="folder for the PDF, PNG and JSON (default: figures)")
    parser.add_argument("--config", help="a JSON figure config (default: the packaged one, figures/visual.json)")
    parser.add_argument("--data-root", help="default: $BENCH_DATA or ./datasets")
    parser.add_argument("--weights", metavar="WEIGHTS", help=f"{WEIGHTS_RULE} (default: each detector's own; demo without the paper's data)")
    parser.add_argument("--results", help="results root holding the feature cache (default: $BENCH_RESULTS or ./results)")
    parser.add_argument("--demo", action="store_true", help="use the demo suites even when the paper's data is there")
    parser.add_argument("--fake", help="the fake image of the Grad-CAM rows (default: the generator's first fake)")
    parser.add_argument("--real", help="the real image of the Grad-CAM rows (default: the generator's first real)")
    parser.add_argument("--method", choices=("gradcam", "gradcam++", "scorecam"), help="default: the config's")
    parser.add_argument("--limit", type=int, help="at most N real and N fake images per t-SNE generator")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--json", action="store_true", help="print the figure's numbers as JSON")


def run(args: argparse.Namespace) -> int:
    from bench import api

    document, files = api.visual_figure(
        args.name, output=args.output, config=args.config, data_root=args.data_root, weights=args.weights,
        results=args.results, device=args.device, fake=args.fake, real=args.real, demo=args.demo,
        seed=args.seed, method=args.method, limit=args.limit)
    if args.json:
        print(json.dumps(document, indent=1))
        return 0
    print(document["note"])
    for record in document["tsne"]:
        print(f"{record['detector']:>6} {record['suite']}/{record['generator']}: silhouette "
              f"{record['silhouette']:.3f}, {record['knn_k']}-NN accuracy {100 * record['knn_accuracy']:.1f}% "
              f"({record['folds']}-fold)")
    print(f"wrote {files[0]}, {files[1]} and {files[2]}")
    return 0
