"""Pooled features of detectors on suites, scored by the runner's units of work like scores.

A detector's features are the vector its head reads, caught by a forward hook on its declared
``feature_layer`` (:func:`detectors.layers.logits_and_features`) in the same forward pass of the fast scorer
that gives its logit. The runner (bench.engine.runner, ``DetectorRun(features=True)``) computes them under
the suite's protocol exactly as ``bench run`` computes scores, and caches each unit of work in
``<results root>/feature-cache/<key>/`` (``key.json``, part files while it runs, then ``scores.parquet``:
the score columns plus one ``features`` list per image). The key is the score cache's key plus the feature
layer, so a changed model, protocol or file list is recomputed, never reused; a killed extraction resumes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analyses.separation import separation, tsne_2d
from bench.engine.config import EvalConfig
from bench.engine.store import ResultsStore
from bench.engine.suites import ResolvedSuite
from bench.errors import BenchError
from detectors import LoadedDetector

log = logging.getLogger(__name__)

@dataclass
class Embedding:
    """One detector's features on one generator's images (the usable ones)."""

    detector: str
    suite: str
    generator: str
    paths: list[str]
    """Relative to the suite root."""
    labels: np.ndarray
    """int [N]: 0 real, 1 fake."""
    features: np.ndarray
    """float32 [N, D]."""
    skipped: int = 0
    """Images that could not be used (corrupt, too small for the model)."""


def compute_embeddings(
    loaded: Sequence[LoadedDetector], suites: Sequence[ResolvedSuite], *, config: EvalConfig,
    generators: Sequence[str] | None = None, store: ResultsStore | None = None,
) -> list[Embedding]:
    """Features of every detector on every (suite, generator), ordered by unit then detector. Scored by the
    runner's units of work (bench.engine.runner, `DetectorRun(features=True)`): cached, resumed after a
    kill from their part files, shared out between torchrun processes, exactly as `bench run`'s scores."""
    import dataclasses

    from bench.engine.inference import pick_device
    from bench.engine.runner import FEATURE_CACHE, DetectorRun, score_suites
    from detectors.layers import feature_module

    config = dataclasses.replace(config, device=str(pick_device(config.device)))
    store = store or ResultsStore(config.output)
    store.require_writable(runs=False, caches=(FEATURE_CACHE,), option="--results")  # exit 2 before any work
    for item in loaded:
        feature_module(item.detector, item.model)  # an undeclared or wrong layer fails before any work
    runs = [DetectorRun(item, features=True) for item in loaded]
    score_suites(runs, list(suites), store, config, generators=list(generators) if generators else None)
    return [_embedding(run.loaded, suite, generator, frame)
            for (suite, generator) in runs[0].frames for run in runs
            for frame in [run.frames[(suite, generator)]]]


def _embedding(item: LoadedDetector, suite: str, generator: str, frame: pd.DataFrame) -> Embedding:
    usable = frame[frame["reason"].isna() & frame["features"].notna()]
    features = (np.stack([np.asarray(v, dtype=np.float32) for v in usable["features"]])
                if len(usable) else np.zeros((0, 0), dtype=np.float32))
    return Embedding(item.detector.name, suite, generator, list(usable["path"]),
                     usable["label"].to_numpy(dtype=int), features, skipped=len(frame) - len(usable))


def write_points(path: Path, embeddings: Sequence[Embedding], points: Sequence[np.ndarray]) -> None:
    """One CSV row per image and panel: detector, suite, generator, path, label, x, y (to re-plot)."""
    from bench.engine.store import atomic_write_csv

    frames = [pd.DataFrame({"detector": e.detector, "suite": e.suite, "generator": e.generator, "path": e.paths,
                            "label": e.labels, "x": p[:, 0], "y": p[:, 1]}) for e, p in zip(embeddings, points)]
    atomic_write_csv(path, pd.concat(frames, ignore_index=True))


def _caption(numbers) -> str:
    parts = []
    if numbers.silhouette is not None:
        parts.append(f"silhouette {numbers.silhouette:.2f}")
    if numbers.knn_accuracy is not None:
        parts.append(f"{numbers.knn_k}-NN {100 * numbers.knn_accuracy:.1f}% ({numbers.folds}-fold)")
    return ", ".join(parts)


def embed(detectors: str, suites: str, *, output: str | Path, generators: str | list[str] | None = None,
          weights: str | None = None, data_root: str | None = None, results: str | None = None,
          limit: int | None = None, seed: int = 0, device: str = "auto", batch_size: int = 64,
          workers: int | None = None, fresh: bool = False, on_note=None, progress: bool = True) -> dict:
    """Each detector's pooled features on the suites (cached like scores), with per (detector, generator)
    the silhouette, the k-NN accuracy and a t-SNE. Writes `tsne.png`, `points.csv` and `embed.json` under
    `output` and returns embed.json's content. `on_note(text)` hears the suite selection's note (the demo
    fallback) before the work. `progress`: bars with an ETA on stderr (on a terminal) while features are
    extracted and while each (detector, generator) is projected."""
    import sys
    import time

    from tqdm import tqdm

    from bench.engine.config import EvalConfig
    from bench.engine.evaluation import select_suites, weights_per_detector
    from bench.engine.store import ResultsStore, atomic_write_json, json_safe, require_writable_folder
    from bench.outputs.drawing import save, tsne_grid
    from detectors import get_detectors, load_detector

    output = require_writable_folder(output, "embeddings")  # before the features are computed
    config = EvalConfig(data_root=data_root, output=results, device=device, batch_size=batch_size,
                        workers=workers, limit=limit, fresh=fresh, progress=progress)
    selection = select_suites(suites, data_root, weights)
    if selection.note and on_note is not None:
        on_note(selection.note)
    named = get_detectors(detectors)
    default = "demo" if selection.demo else None
    loaded = [load_detector(d, w or default) for d, w in zip(named, weights_per_detector(weights, named))]
    if isinstance(generators, str):
        generators = [g.strip() for g in generators.split(",") if g.strip()] or None
    started = time.perf_counter()
    embeddings = compute_embeddings(loaded, selection.suites, config=config, generators=generators,
                                    store=ResultsStore(results))
    extracted = time.perf_counter() - started
    panels, rows, records, points = [], [], [], []
    for embedding in tqdm(embeddings, unit="panel", desc="t-SNE and separation", file=sys.stderr, leave=False,
                          disable=not progress or None):
        row_key = f"{embedding.suite}/{embedding.generator}"
        if row_key not in rows:
            rows.append(row_key)
        if len(embedding.labels) < 3 or len(set(embedding.labels.tolist())) < 2:
            raise BenchError(f"{embedding.detector} on {row_key}: {len(embedding.labels)} usable images, "
                             "not both classes; nothing to separate")
        numbers = separation(embedding.features, embedding.labels, seed=seed)
        xy = tsne_2d(embedding.features, seed=seed)
        points.append(xy)
        panels.append((row_key, embedding.detector, xy, embedding.labels, _caption(numbers)))
        records.append({"detector": embedding.detector, "suite": embedding.suite, "generator": embedding.generator,
                        "skipped": embedding.skipped, **numbers.as_dict()})
    projected = time.perf_counter() - started - extracted
    names = [item.detector.name for item in loaded]
    note = selection.note if selection.demo else None
    figure = tsne_grid(panels, rows, names, title=note and "synthetic demo data, not the paper's suites")
    save(figure, output / "tsne.png")
    write_points(output / "points.csv", embeddings, points)
    document = {
        "detectors": {item.detector.name: {"weights": item.weights.label, "sha256": item.weights.sha256,
                                           "feature_layer": item.detector.feature_layer} for item in loaded},
        "suites": selection.names, "demo": selection.demo, "note": note, "seed": seed,
        "method": {"silhouette": "sklearn silhouette_score, Euclidean, original feature space",
                   "knn": "k-NN accuracy, stratified cross-validation (shuffled with the seed), original feature "
                          "space; k = 10 and 5 folds unless a generator is too small (then each result's knn_k "
                          "and folds say what was used)",
                   "tsne": "sklearn TSNE(init='pca', learning_rate='auto'), PCA to 50 dims first when D > 50"},
        "seconds": {"features": round(extracted, 2), "tsne_and_numbers": round(projected, 2)},
        "results": records,
    }
    atomic_write_json(output / "embed.json", json_safe(document))
    return json_safe(document)
