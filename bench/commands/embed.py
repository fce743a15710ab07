"""Pooled features of detectors on a suite: t-SNE pictures and numbers on how well they separate real
from fake.

Each detector's feature is the vector its head reads (its declared `feature_layer`), computed under the
suite's protocol by the same scoring loop as `bench run` and cached like scores. Per (detector,
generator): the silhouette score and the 10-NN real/fake accuracy (stratified 5-fold cross-validation)
in the original feature space, and a t-SNE (PCA to 50 dimensions first when larger; fixed --seed).
Written under --output: `tsne.png` (rows: generators, columns: detectors), `points.csv` (the t-SNE
coordinates of every image) and `embed.json` (the numbers and settings).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.errors import BenchError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", required=True, help="NAME[,NAME...]: the columns of the picture")
    parser.add_argument("--suite", required=True, help="NAME|GROUP|PATH[,...] (demo: the synthetic demo suites)")
    parser.add_argument("--generators", help="G1[,G2...]: only these generators (default: all of the suites')")
    parser.add_argument("--weights", help="NAME, tag or PATH for every detector, or one per detector "
                                          "(default: each detector's own; demo on the demo suites)")
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
    from bench.analyses.embeddings import compute_embeddings, write_points
    from bench.analyses.separation import separation, tsne_2d
    from bench.api import select_suites
    from bench.engine.config import EvalConfig
    from bench.engine.evaluation import weights_per_detector
    from bench.engine.store import ResultsStore, atomic_write_json, json_safe
    from bench.outputs.drawing import save, tsne_grid
    from detectors import get_detectors, load_detector

    say = (lambda text: print(text, file=sys.stderr)) if args.json else print
    config = EvalConfig(data_root=args.data_root, output=args.results, device=args.device,
                        batch_size=args.batch_size, workers=args.workers, limit=args.limit, fresh=args.fresh)
    selection = select_suites(args.suite, args.data_root)
    if selection.note:
        say(selection.note)
    detectors = get_detectors(args.detector)
    default = "demo" if selection.demo else None
    loaded = [load_detector(d, w or default)
              for d, w in zip(detectors, weights_per_detector(args.weights, detectors))]
    generators = [g.strip() for g in args.generators.split(",") if g.strip()] if args.generators else None
    started = time.perf_counter()
    embeddings = compute_embeddings(loaded, selection.suites, config=config, generators=generators,
                                    store=ResultsStore(args.results))
    extracted = time.perf_counter() - started
    panels, rows, records, points = [], [], [], []
    for embedding in embeddings:
        row_key = f"{embedding.suite}/{embedding.generator}"
        if row_key not in rows:
            rows.append(row_key)
        if len(embedding.labels) < 3 or len(set(embedding.labels.tolist())) < 2:
            raise BenchError(f"{embedding.detector} on {row_key}: {len(embedding.labels)} usable images, "
                             "not both classes; nothing to separate")
        numbers = separation(embedding.features, embedding.labels, seed=args.seed)
        xy = tsne_2d(embedding.features, seed=args.seed)
        points.append(xy)
        caption = _caption(numbers)
        panels.append((row_key, embedding.detector, xy, embedding.labels, caption))
        records.append({"detector": embedding.detector, "suite": embedding.suite, "generator": embedding.generator,
                        "skipped": embedding.skipped, **numbers.as_dict()})
    projected = time.perf_counter() - started - extracted
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    names = [item.detector.name for item in loaded]
    note = selection.note if selection.demo else None
    figure = tsne_grid(panels, rows, names, title=note and "synthetic demo data, not the paper's suites")
    save(figure, output / "tsne.png")
    write_points(output / "points.csv", embeddings, points)
    document = {
        "detectors": {item.detector.name: {"weights": item.weights.label, "sha256": item.weights.sha256,
                                           "feature_layer": item.detector.feature_layer} for item in loaded},
        "suites": selection.names, "demo": selection.demo, "note": note, "seed": args.seed,
        "method": {"silhouette": "sklearn silhouette_score, Euclidean, original feature space",
                   "knn": "10-NN accuracy, stratified 5-fold CV (shuffled with the seed), original feature space",
                   "tsne": "sklearn TSNE(init='pca', learning_rate='auto'), PCA to 50 dims first when D > 50"},
        "seconds": {"features": round(extracted, 2), "tsne_and_numbers": round(projected, 2)},
        "results": records,
    }
    atomic_write_json(output / "embed.json", json_safe(document))
    if args.json:
        print(json.dumps(json_safe(document), indent=1))
        return 0
    print_table(records)
    print(f"wrote tsne.png, points.csv and embed.json under {output} "
          f"(features {extracted:.1f}s, t-SNE and numbers {projected:.1f}s)")
    return 0


def _caption(numbers) -> str:
    parts = []
    if numbers.silhouette is not None:
        parts.append(f"silhouette {numbers.silhouette:.2f}")
    if numbers.knn_accuracy is not None:
        parts.append(f"10-NN {100 * numbers.knn_accuracy:.1f}%")
    return ", ".join(parts)


def print_table(records: list[dict]) -> None:
    from bench.outputs.textable import format_table

    rows = [[r["detector"], f"{r['suite']}/{r['generator']}", str(r["n_real"]), str(r["n_fake"]), str(r["dim"]),
             "-" if r["silhouette"] is None else f"{r['silhouette']:.3f}",
             "-" if r["knn_accuracy"] is None else f"{100 * r['knn_accuracy']:.1f} +- {100 * r['knn_accuracy_std']:.1f}"]
            for r in records]
    print(format_table(["detector", "generator", "real", "fake", "dim", "silhouette", "10-NN acc % (5-fold)"], rows,
                       [False, False, True, True, True, True, True]))
