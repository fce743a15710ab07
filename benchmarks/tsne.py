"""t-SNE of pooled features on 2 x 300 images: how long `bench embed`'s projection takes, beside
scikit-learn's default thread count. Read both ways: two panels of 300 images (one demo generator, 150
real + 150 fake, for LFM and for NPR), and one set of 600 images (300 real + 300 fake: LFM's features
on two demo generators).

Features come from `bench.analyses.embeddings.compute_embeddings` (the scoring loop, cached), then each
detector's [300, D] features go through `bench.analyses.separation.tsne_2d` (PCA to 50, t-SNE) and
`separation` (silhouette, 10-NN 5-fold). Timed: feature extraction (first run; a rerun reads the cache),
then per panel the t-SNE with one OpenMP thread (what bench uses) and with scikit-learn's default (all
cores), and the numbers.

    python -m benchmarks.tsne [--generators nearest-conv,pixel-shuffle] [--results DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from benchmarks.common import describe_machine


def main(argv: list[str] | None = None) -> int:
    from bench.analyses.embeddings import compute_embeddings
    from bench.analyses.separation import separation, tsne_2d
    from bench.api import select_suites
    from bench.engine.config import EvalConfig
    from bench.engine.store import ResultsStore
    from bench.engine.suites import default_data_root
    from detectors import load_detector

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generators", default="nearest-conv,pixel-shuffle", help="two demo-gan generators")
    parser.add_argument("--results", help="feature cache root (default: a temporary folder, so features are timed)")
    args = parser.parse_args(argv)

    print(describe_machine())
    selection = select_suites("demo-gan", default_data_root())
    loaded = [load_detector(name, "demo") for name in ("lfm", "npr")]
    with tempfile.TemporaryDirectory() as temporary:
        results = args.results or temporary
        started = time.perf_counter()
        embeddings = compute_embeddings(loaded, selection.suites, config=EvalConfig(output=results, progress=False),
                                        generators=args.generators.split(","), store=ResultsStore(results))
        features_s = time.perf_counter() - started
    print(f"features of {sum(len(e.labels) for e in embeddings)} image x detector pairs: {features_s:.1f}s")
    total_one = total_default = 0.0
    first = args.generators.split(",")[0]
    for embedding in [e for e in embeddings if e.generator == first]:
        timings = {}
        for label, threads in (("1 thread", 1), ("default threads", None)):
            started = time.perf_counter()
            tsne_2d(embedding.features, seed=0, threads=threads)
            timings[label] = time.perf_counter() - started
        started = time.perf_counter()
        numbers = separation(embedding.features, embedding.labels)
        numbers_s = time.perf_counter() - started
        total_one += timings["1 thread"] + numbers_s
        total_default += timings["default threads"] + numbers_s
        print(f"{embedding.detector:>4} {embedding.generator}: {len(embedding.labels)} x {embedding.features.shape[1]}"
              f"  t-SNE {timings['1 thread']:.1f}s (1 thread) / {timings['default threads']:.1f}s (default)"
              f"  numbers {numbers_s:.2f}s  silhouette {numbers.silhouette:.3f}  10-NN {numbers.knn_accuracy:.3f}")
    print(f"2 x 300: t-SNE + numbers {total_one:.1f}s with 1 thread, {total_default:.1f}s with default threads"
          f" (target: under 60 s)")
    lfm = [e for e in embeddings if e.detector == "lfm"]
    features, labels = np.vstack([e.features for e in lfm]), np.concatenate([e.labels for e in lfm])
    started = time.perf_counter()
    tsne_2d(features, seed=0)
    tsne_s = time.perf_counter() - started
    started = time.perf_counter()
    numbers = separation(features, labels)
    print(f"lfm, {len(labels)} images ({int((labels == 0).sum())} real + {int((labels == 1).sum())} fake) x "
          f"{features.shape[1]}: t-SNE {tsne_s:.1f}s (1 thread), numbers {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
