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
