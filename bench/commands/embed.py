"""Pooled features of detectors on a suite: t-SNE pictures and numbers on how well they separate real
from fake.

Each detector's feature is the vector its head reads (its declared `feature_layer`), computed under the
suite's protocol by the same scoring loop as `bench run` and cached like scores. Per (detector,
generator): the silhouette score and the 10-NN real/fake accuracy (stratified 5-fold cross-validation;
fewer neighbours and folds on a small generator, printed and recorded as used) in the original feature space, and a t-SNE (PCA to 50 dimensions first when larger; fixed --seed).
Written under --output: `tsne.png` (rows: generators, columns: detectors), `points.csv` (the t-SNE
coordinates of every image) and `embed.json` (the numbers and settings).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from bench.api import WEIGHTS_RULE

    parser.add_argument("--detector", required=True, help="NAME[,NAME...]: the columns of the picture")
    parser.add_argument("--suite", required=True, help="NAME|GROUP|PATH[,...] (demo: the synthetic demo suites)")
    parser.add_argument("--generators", help="G1[,G2...]: only these generators (default: all of the suites')")
    parser.add_argument("--weights", metavar="WEIGHTS", help=f"{WEIGHTS_RULE} (default: each detector's own; demo on the demo suites)")
    parser.add_argument("--output", required=True, help="folder for tsne.png, points.csv and embed.json")
    parser.add_argument("--data-root", help="default: $BENCH_DATA or ./datasets")
    parser.add_argument("--results", help="results root holding the feature cache (default: $BENCH_RESULTS or ./results)")
    parser.add_argument("--limit", type=int, help="at most N real and N fake images per generator")
    parser.add_argument("--seed", type=int, default=0, help="seed of the t-SNE, PCA and k-NN folds (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: min(4, CPUs))")
    parser.add_argument("--fresh", action="store_true", help="recompute features instead of reusing the cache")
    parser.add_argument("--json", action="store_true", help="print embed.json instead of the table")


def run(args: argparse.Namespace) -> int:
    from bench import api

    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    document = api.embed(args.detector, args.suite, output=args.output, generators=args.generators,
                         weights=args.weights, data_root=args.data_root, results=args.results, limit=args.limit,
                         seed=args.seed, device=args.device, batch_size=args.batch_size, workers=args.workers,
                         fresh=args.fresh, on_note=say, progress=not getattr(args, "quiet", False))
    if args.json:
        print(json.dumps(document, indent=1))
        return 0
    print_table(document["results"])
    seconds = document["seconds"]
    images = sum(record["n_real"] + record["n_fake"] for record in document["results"])
    print(f"done: {images:,} image embeddings ({len(document['detectors'])} detector(s) x "
          f"{len(document['results']) // max(1, len(document['detectors']))} generator(s)) in "
          f"{seconds['features'] + seconds['tsne_and_numbers']:.1f} s (features {seconds['features']:.1f}s, t-SNE and "
          f"numbers {seconds['tsne_and_numbers']:.1f}s); wrote tsne.png, points.csv and embed.json under {args.output}")
    return 0


def print_table(records: list[dict]) -> None:
    from bench.outputs.textable import format_table

    rows = [[r["detector"], f"{r['suite']}/{r['generator']}", str(r["n_real"]), str(r["n_fake"]), str(r["dim"]),
             "-" if r["silhouette"] is None else f"{r['silhouette']:.3f}",
             "-" if r["knn_accuracy"] is None else f"{100 * r['knn_accuracy']:.1f} +- {100 * r['knn_accuracy_std']:.1f}",
             "-" if r["knn_accuracy"] is None else f"{r['knn_k']}-NN, {r['folds']}-fold"]
            for r in records]
    print(format_table(["detector", "generator", "real", "fake", "dim", "silhouette", "k-NN acc %", "k-NN used"],
                       rows, [False, False, True, True, True, True, True, False]))
