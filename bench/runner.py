"""The evaluation loop: suites x generators x detectors -> cached per-image scores -> run folders.

Each image is decoded once for all detectors that share a preprocessing (resize, even crop); scores
stream to the cache in parts, so memory stays flat and a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

import bench
from bench.data import DecodeSpec, ImageDataset, collate_by_size
from bench.inference import autocast_context, prepare_scorer
from bench.metrics import compute_metrics, mean_metrics, probability
from bench.protocol import protocol_name
from bench.provenance import git_commit
from bench.store import (
    SCORE_COLUMNS,
    ResultsStore,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_parquet,
    file_list_fingerprint,
    work_key,
)
from bench.suites import PAPER_SUITES, GeneratorFiles, ResolvedSuite, discover
from detectors import LoadedDetector

PART_EVERY_IMAGES = int(os.environ.get("BENCH_PART_EVERY", "512"))
"""Flush a generator's scores to a part file this often (images): a kill loses at most this much work."""


@dataclass
class RunOptions:
    device: torch.device
    batch_size: int = 64
    workers: int = 2
    limit: int | None = None
    fresh: bool = False
    load_truncated: bool = False
    compile: bool = False
    amp: str | None = None
    progress: bool = True
    perturbation: str | None = None


@dataclass
class WorkUnit:
    suite: ResolvedSuite
    generator: GeneratorFiles
    items: list[tuple[Path, int]]
    relative: list[str]
    fingerprint: str


@dataclass
class DetectorRun:
    """One detector's share of a `bench run`: which work units it needs and where its scores are."""

    loaded: LoadedDetector
    key_fields: dict[tuple[str, str], dict] = field(default_factory=dict)
    frames: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)


def build_units(suites: list[ResolvedSuite], limit: int | None) -> list[WorkUnit]:
    units = []
    for resolved in suites:
        generators = discover(resolved.root, resolved.suite)
        extra = [g.name for g in generators if g.extra]
        if extra and resolved.suite.name in PAPER_SUITES:
            # e.g. CNNDetection's test download has crn, imle, san, ... beside the paper's 8 columns; the
            # paper's test.py scores only its columns, and so does the harness, or the means would differ
            print(f"note: {resolved.suite.name}: not scoring {', '.join(extra)} (not columns of the paper's table)",
                  file=sys.stderr)
            generators = [g for g in generators if not g.extra]
        for generator in generators:
            real, fake = generator.real, generator.fake
            if limit is not None:
                real, fake = real[:limit], fake[:limit]
            items = [(p, 0) for p in real] + [(p, 1) for p in fake]
            relative = [p.relative_to(resolved.root).as_posix() for p, _ in items]
            fingerprint = file_list_fingerprint(
                (rel, label, p.stat().st_size) for rel, (p, label) in zip(relative, items)
            )
            units.append(WorkUnit(resolved, generator, items, relative, fingerprint))
    return units


def model_fingerprint(loaded: LoadedDetector) -> str:
    """Hash of the model's rounded logits on a fixed probe batch.

    Part of every cache key, so that stored scores are not reused after a code change that alters what
    the model computes with the same weights (the weights' sha256 alone cannot see that)."""
    if loaded.fingerprint is not None:
        return loaded.fingerprint
    generator = torch.Generator().manual_seed(20251122)
    size = loaded.detector.preprocessing.input_size or 160  # a fixed-size ViT (UnivFD) takes its own size only
    probe = torch.rand(2, 3, size, size, generator=generator) * 2 - 1
    with torch.inference_mode():
        logits = loaded.model.eval()(probe).float()
    rounded = ",".join(f"{value:.4f}" for value in logits.tolist())
    digest = hashlib.sha256(rounded.encode()).hexdigest()[:16]
    loaded.fingerprint = digest
    return digest


def unit_key_fields(unit: WorkUnit, loaded: LoadedDetector, options: RunOptions) -> dict:
    return {
        "detector": loaded.detector.name,
        "weights_sha256": loaded.weights.sha256,
        "model": model_fingerprint(loaded),
        "suite": unit.suite.suite.name,
        "generator": unit.generator.name,
        "protocol": protocol_name(unit.suite.suite.resize),
        "even_crop": loaded.detector.preprocessing.even_crop,
        "perturbation": options.perturbation,
        "truncated_images": "load" if options.load_truncated else "skip",
        "files": unit.fingerprint,
    }


def evaluate(
    detector_runs: list[DetectorRun], suites: list[ResolvedSuite], store: ResultsStore, options: RunOptions
) -> None:
    """Fill every DetectorRun's frames with the scores of every (suite, generator)."""
    units = build_units(suites, options.limit)
    scorers = {}
    for unit in units:
        uid = (unit.suite.suite.name, unit.generator.name)
        # detectors sharing a preprocessing decode each image once
        pending: dict[tuple[int | None, bool], list[DetectorRun]] = {}
        for run in detector_runs:
            fields = unit_key_fields(unit, run.loaded, options)
            run.key_fields[uid] = fields
            entry = store.cache_entry(work_key(fields))
            if entry.is_complete() and not options.fresh:
                run.frames[uid] = entry.read()
                continue
            group = (unit.suite.suite.resize, run.loaded.detector.preprocessing.even_crop)
            pending.setdefault(group, []).append(run)
        for (resize, even_crop), runs in pending.items():
            for run in runs:
                if run.loaded.detector.name not in scorers:
                    scorers[run.loaded.detector.name] = prepare_scorer(
                        run.loaded.model, run.loaded.detector.preprocessing, options.device, compile=options.compile
                    )
            frames = score_unit(unit, runs, scorers, resize, even_crop, store, options)
            for run in runs:
                run.frames[uid] = frames[run.loaded.detector.name]


def score_unit(
    unit: WorkUnit, runs: list[DetectorRun], scorers: dict, resize: int | None, even_crop: bool,
    store: ResultsStore, options: RunOptions,
) -> dict[str, pd.DataFrame]:
    uid = (unit.suite.suite.name, unit.generator.name)
    entries = {}
    done: dict[str, pd.DataFrame] = {}
    for run in runs:
        entry = store.cache_entry(work_key(run.key_fields[uid]))
        if options.fresh:
            for part in entry.parts():
                part.unlink()
            entry.final_path.unlink(missing_ok=True)
        entry.ensure(run.key_fields[uid])
        entries[run.loaded.detector.name] = entry
        done[run.loaded.detector.name] = entry.read_partial()
    # images every detector of this group has already scored in an interrupted run are not decoded again
    finished_paths = set.intersection(*(set(frame["path"]) for frame in done.values()))
    todo = [i for i, rel in enumerate(unit.relative) if rel not in finished_paths]
    buffers: dict[str, list[dict]] = {name: [] for name in entries}
    suite_name, generator = uid
    if todo:
        dataset = ImageDataset(
            [unit.items[i] for i in todo],
            DecodeSpec(resize=resize, even_crop=even_crop, load_truncated=options.load_truncated),
        )
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=options.batch_size, num_workers=options.workers, collate_fn=collate_by_size,
            pin_memory=options.device.type == "cuda", persistent_workers=False,
        )
        names = ", ".join(run.loaded.detector.name for run in runs)
        bar = tqdm(
            total=len(unit.relative), initial=len(unit.relative) - len(todo), unit="img", leave=False,
            desc=f"{names} | {suite_name}/{generator}", disable=not options.progress or None, file=sys.stderr,
        )
        since_flush = 0
        with torch.inference_mode(), autocast_context(options.device, options.amp):
            for batch in loader:
                for local_index, reason in batch.failed:
                    i = todo[local_index]
                    for name in entries:
                        buffers[name].append(_row(suite_name, generator, unit, i, math.nan, reason))
                for local_indices, pixels in batch.groups:
                    pixels = pixels.to(options.device, non_blocking=True)
                    for run in runs:
                        name = run.loaded.detector.name
                        logits, reason = score_group(scorers[name], pixels)
                        for local_index, logit in zip(local_indices, logits):
                            buffers[name].append(_row(suite_name, generator, unit, todo[local_index], logit, reason))
                n = sum(len(g[0]) for g in batch.groups) + len(batch.failed)
                bar.update(n)
                since_flush += n
                if since_flush >= PART_EVERY_IMAGES:
                    for name, entry in entries.items():
                        entry.append_part(pd.DataFrame(buffers[name]))
                        buffers[name] = []
                    since_flush = 0
        bar.close()
    frames = {}
    for name, entry in entries.items():
        entry.append_part(pd.DataFrame(buffers[name]))
        rows = entry.read_partial()
        order = {rel: i for i, rel in enumerate(unit.relative)}
        rows = rows[rows["path"].isin(order)].copy()
        rows["_order"] = rows["path"].map(order)
        rows = rows.sort_values("_order").drop(columns="_order").reset_index(drop=True)
        if len(rows) != len(unit.relative):
            raise RuntimeError(f"{suite_name}/{generator}: {len(rows)} rows for {len(unit.relative)} files")
        entry.finish(rows)
        frames[name] = rows
    return frames


def score_group(scorer, pixels: torch.Tensor) -> tuple[list[float], str | None]:
    """Logits of a same-size group, or NaNs and the reason when the model cannot take that size
    (e.g. a native-size image too small for Top-K pooling): those images are skipped, not fatal."""
    try:
        return scorer(pixels).float().cpu().tolist(), None
    except ValueError as error:
        h, w = pixels.shape[-2:]
        return [math.nan] * len(pixels), f"cannot be scored at {w}x{h}: {error}"


def _row(suite: str, generator: str, unit: WorkUnit, index: int, logit: float, reason: str | None) -> dict:
    return {
        "suite": suite, "generator": generator, "path": unit.relative[index], "label": unit.items[index][1],
        "logit": logit, "prob": probability(logit), "reason": reason,
    }


def metrics_for(scores: pd.DataFrame, suite_order: list[str], generator_order: dict[str, list[str]]) -> dict:
    """metrics.json content: per generator, per suite mean, overall mean over all generators."""
    suites = {}
    every_generator = []
    for suite in suite_order:
        per_generator = {}
        for generator in generator_order[suite]:
            rows = scores[(scores["suite"] == suite) & (scores["generator"] == generator)]
            per_generator[generator] = compute_metrics(rows["label"].to_numpy(), rows["prob"].to_numpy())
        every_generator.extend(per_generator.values())
        suites[suite] = {"generators": per_generator, "mean": mean_metrics(list(per_generator.values()))}
    return {"suites": suites, "mean": mean_metrics(every_generator)}


def collect_scores(run: DetectorRun, suite_names: list[str]) -> pd.DataFrame:
    """All of a detector's rows (scored and skipped) for the given suites, in generator order."""
    frames = [frame for (suite, _), frame in run.frames.items() if suite in suite_names]
    if not frames:
        return pd.DataFrame(columns=[*SCORE_COLUMNS, "reason"])
    return pd.concat(frames, ignore_index=True)


def metrics_for_run(run: DetectorRun, suites: list[ResolvedSuite], scores: pd.DataFrame | None = None) -> dict:
    suite_names = [s.suite.name for s in suites]
    if scores is None:
        scores = collect_scores(run, suite_names)
    generator_order = {s: [g for (suite, g) in run.frames if suite == s] for s in suite_names}
    return metrics_for(scores[scores["reason"].isna()], suite_names, generator_order)


def write_run(
    run: DetectorRun, suites: list[ResolvedSuite], store: ResultsStore, options: RunOptions,
    data_root: Path, started_at: str, note: str | None = None,
) -> tuple[Path, dict]:
    """Assemble the run folder of one detector from its (cached or fresh) scores."""
    loaded = run.loaded
    suite_names = [s.suite.name for s in suites]
    run_id = f"{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}-{loaded.detector.name}-{'+'.join(suite_names)}"
    if len(run_id) > 120:
        run_id = run_id[:120]
    folder = store.new_run_dir(run_id)
    info = {
        "run_id": folder.name,
        "status": "running",
        "detector": loaded.detector.name,
        "display_name": loaded.detector.display_name,
        "weights": {"name": loaded.weights.name, "sha256": loaded.weights.sha256, "path": str(loaded.weights.path)},
        "suites": suite_names,
        "suite_roots": {s.suite.name: str(s.root) for s in suites},
        "data_root": str(data_root),
        "protocol": {s.suite.name: protocol_name(s.suite.resize) for s in suites},
        "even_crop": loaded.detector.preprocessing.even_crop,
        "perturbation": options.perturbation,
        "truncated_images": "load" if options.load_truncated else "skip",
        "limit_per_class": options.limit,
        "package_version": bench.__version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "device": str(options.device),
        "started_at": started_at,
        "finished_at": None,
        "note": note,
    }
    atomic_write_json(folder / "run.json", info)
    scores = collect_scores(run, suite_names)
    skipped = scores[scores["reason"].notna()]
    scored = scores[scores["reason"].isna()]
    atomic_write_parquet(folder / "scores.parquet", scored[SCORE_COLUMNS].reset_index(drop=True))
    atomic_write_csv(folder / "skipped.csv", skipped[["path", "reason"]].assign(
        path=skipped["suite"] + "/" + skipped["path"]).reset_index(drop=True))
    metrics = metrics_for_run(run, suites, scores)
    atomic_write_json(folder / "metrics.json", metrics)
    info.update(
        status="finished",
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        n_images={s: int((scored["suite"] == s).sum()) for s in suite_names},
        n_skipped=int(len(skipped)),
        work_keys={f"{k[0]}/{k[1]}": work_key(v) for k, v in run.key_fields.items()},
    )
    atomic_write_json(folder / "run.json", info)
    return folder, metrics


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)

