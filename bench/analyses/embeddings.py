"""Pooled features of detectors on suites, through the one scoring loop and cached like scores.

A detector's features are the vector its head reads, caught by a forward hook on its declared
``feature_layer`` (:func:`detectors.layers.feature_scorer`) around the same fast scorer that gives its
logits. They are computed by ``bench.engine.scoring.score_images`` under the suite's protocol, exactly as
``bench run`` computes scores, and cached per unit of work in ``<results root>/feature-cache/<key>/``
(``key.json`` + ``scores.parquet`` with one ``features`` list per image): the key is the score cache's
key (detector, weights sha256, model fingerprint, suite, generator, decode spec, perturbation, file list)
plus the feature layer, so a changed model, protocol or file list is recomputed, never reused.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analyses.separation import separation, tsne_2d
from bench.engine.config import EvalConfig
from bench.engine.store import CacheEntry, ResultsStore, work_key
from bench.engine.suites import ResolvedSuite
from bench.errors import BenchError
from detectors import LoadedDetector

log = logging.getLogger(__name__)

CACHE_FOLDER = "feature-cache"


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


def feature_cache(store: ResultsStore, fields: dict) -> CacheEntry:
    return CacheEntry(store.root / CACHE_FOLDER / work_key(fields))


def compute_embeddings(
    loaded: Sequence[LoadedDetector], suites: Sequence[ResolvedSuite], *, config: EvalConfig,
    generators: Sequence[str] | None = None, store: ResultsStore | None = None,
) -> list[Embedding]:
    """Features of every detector on every (suite, generator), ordered by unit then detector."""
    from tqdm import tqdm

    from bench.engine.inference import pick_device, prepare_scorer
    from bench.engine.runner import build_units, decode_spec, unit_key_fields
    from bench.engine.scoring import score_images
    from detectors.layers import feature_module, feature_scorer

    store = store or ResultsStore(config.output)
    for item in loaded:
        feature_module(item.detector, item.model)  # an undeclared or wrong layer fails before any work
    units = build_units(list(suites), config.limit)
    if generators:
        available = sorted({unit.generator.name for unit in units})
        unknown = [g for g in generators if g not in available]
        if unknown:
            raise BenchError(f"--generators {', '.join(unknown)}: not in the chosen suites "
                             f"(available: {', '.join(available)})")
        units = [unit for unit in units if unit.generator.name in generators]
    device = pick_device(config.device)
    scorers: dict[str, object] = {}
    found: dict[tuple[str, str, str], Embedding] = {}
    for unit in units:
        suite_name, generator = unit.suite.suite.name, unit.generator.name
        pending: dict[object, list[tuple[LoadedDetector, dict]]] = {}
        for item in loaded:
            spec = decode_spec(unit, item, config)
            fields = {**unit_key_fields(unit, item, config, spec), "output": "features",
                      "feature_layer": item.detector.feature_layer}
            entry = feature_cache(store, fields)
            if entry.is_complete() and not config.fresh:
                found[(item.detector.name, suite_name, generator)] = _embedding(item, unit, entry.read())
                continue
            pending.setdefault(spec, []).append((item, fields))
        for spec, items in pending.items():
            group = {}
            for item, _ in items:
                name = item.detector.name
                if name not in scorers:
                    scorer = prepare_scorer(item.model, item.preprocessing, device, compile=config.compile)
                    scorers[name] = feature_scorer(item.detector, scorer, scorer.model)
                group[name] = scorers[name]
            rows: dict[str, list[dict]] = {name: [] for name in group}
            bar = tqdm(total=len(unit.items), unit="img", leave=False, file=sys.stderr,
                       desc=f"features {', '.join(group)} | {suite_name}/{generator}",
                       disable=not config.progress or None)
            for batch in score_images(unit.items, group, spec, device=device, batch_size=config.batch_size,
                                      workers=config.worker_count, amp=config.amp, progress=bar.update,
                                      keys=unit.relative):
                for row in batch:
                    for name in group:
                        value = row.values.get(name)
                        rows[name].append({
                            "suite": suite_name, "generator": generator, "path": unit.relative[row.index],
                            "label": unit.items[row.index][1],
                            "features": None if value is None else np.asarray(value, dtype=np.float32),
                            "reason": row.reasons.get(name),
                        })
            bar.close()
            for item, fields in items:
                frame = pd.DataFrame(rows[item.detector.name])
                entry = feature_cache(store, fields)
                entry.ensure(fields)
                entry.finish(frame)
                found[(item.detector.name, suite_name, generator)] = _embedding(item, unit, frame)
    return [found[(item.detector.name, unit.suite.suite.name, unit.generator.name)]
            for unit in units for item in loaded]


def _embedding(item: LoadedDetector, unit, frame: pd.DataFrame) -> Embedding:
    usable = frame[frame["reason"].isna() & frame["features"].notna()]
    features = (np.stack([np.asarray(v, dtype=np.float32) for v in usable["features"]])
                if len(usable) else np.zeros((0, 0), dtype=np.float32))
    return Embedding(item.detector.name, unit.suite.suite.name, unit.generator.name, list(usable["path"]),
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
        parts.append(f"10-NN {100 * numbers.knn_accuracy:.1f}%")
    return ", ".join(parts)


def embed(detectors: str, suites: str, *, output: str | Path, generators: str | list[str] | None = None,
          weights: str | None = None, data_root: str | None = None, results: str | None = None,
          limit: int | None = None, seed: int = 0, device: str = "auto", batch_size: int = 64,
          workers: int | None = None, fresh: bool = False, on_note=None) -> dict:
    """Each detector's pooled features on the suites (cached like scores), with per (detector, generator)
    the silhouette, the k-NN accuracy and a t-SNE. Writes `tsne.png`, `points.csv` and `embed.json` under
    `output` and returns embed.json's content. `on_note(text)` hears the suite selection's note (the demo
    fallback) before the work."""
    import time

    from bench.engine.config import EvalConfig
    from bench.engine.evaluation import select_suites, weights_per_detector
    from bench.engine.store import ResultsStore, atomic_write_json, json_safe
    from bench.outputs.drawing import save, tsne_grid
    from detectors import get_detectors, load_detector

    config = EvalConfig(data_root=data_root, output=results, device=device, batch_size=batch_size,
                        workers=workers, limit=limit, fresh=fresh)
    selection = select_suites(suites, data_root)
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
    for embedding in embeddings:
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
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
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
                   "knn": "10-NN accuracy, stratified 5-fold CV (shuffled with the seed), original feature space",
                   "tsne": "sklearn TSNE(init='pca', learning_rate='auto'), PCA to 50 dims first when D > 50"},
        "seconds": {"features": round(extracted, 2), "tsne_and_numbers": round(projected, 2)},
        "results": records,
    }
    atomic_write_json(output / "embed.json", json_safe(document))
    return json_safe(document)
