"""Scores of detectors on suites, cached per unit of work, and the run folders made from them.

The scoring itself is `bench.engine.scoring.score_images` (the one loop); this module decides what needs
scoring (a unit of work is one detector x weights x generator x protocol x perturbation x file list, keyed
in the cache), streams the rows into the cache's part files, so memory stays flat and a killed run resumes
where it stopped, and assembles `results/runs/<run-id>/` from the scores. `bench.api.evaluate` is the
entry point.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import logging
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

import bench
from bench import settings
from bench.engine import distributed
from bench.engine.align import RAW, Alignment, alignment_for
from bench.engine.calibration_quality import DEFAULT_BINS, attach_quality
from bench.engine.config import EvalConfig
from bench.engine.decode import DecodeSpec, default_max_pixels, model_min_side
from bench.engine.files import relative_text
from bench.engine.inference import prepare_scorer
from bench.engine.metrics import (
    DEFAULT_PROB_PRECISION,
    EXACT_ORDER_KEYS,
    TIE_NOTE_PREFIX,
    distinct_images,
    mean_metrics,
    metrics_from_scores,
    probability,
    shared_reals,
)
from bench.engine.protocol import parse_resolution
from bench.engine.provenance import git_commit
from bench.engine.results import SCHEMA_VERSION
from bench.engine.scoring import Scorer, score_images
from bench.engine.store import (
    SCORE_COLUMNS,
    ResultsStore,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_parquet,
    content_fingerprint,
    file_digests,
    file_stem,
    locked_entries,
    work_key,
)
from bench.engine.suites import (
    GeneratorFiles,
    ResolvedSuite,
    check_layout,
    discover,
    left_out_sentence,
    require_scored_generators,
    suite_resolution,
    univfd_sample,
)
from bench.engine.uncertainty import attach_intervals, attach_spread, bootstrap_run
from bench.errors import BenchError
from detectors import LoadedDetector
from detectors.layers import logits_and_features

log = logging.getLogger(__name__)


SCORE_CACHE = "cache"
FEATURE_CACHE = "feature-cache"
"""Folders of the results root holding the units of work: logits, and logits with feature vectors."""


@dataclass
class WorkUnit:
    suite: ResolvedSuite
    generator: GeneratorFiles
    items: list[tuple[Path, int]]
    relative: list[str]
    fingerprint: str
    digests: list[str] = field(default_factory=list)
    """Each file's `file_digest` (its bytes' hash), in `items` order: what the image index is keyed by."""


@dataclass
class DetectorRun:
    """One detector's share of an evaluation: which work units it needs and where its scores are."""

    loaded: LoadedDetector
    key_fields: dict[tuple[str, str], dict] = field(default_factory=dict)
    frames: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    calibration: object | None = None
    """A `bench.engine.calibration.Calibration` when the evaluation was asked to calibrate a threshold."""
    features: bool = False
    """Also keep each image's pooled feature vector (the detector's declared `feature_layer`, from the same
    forward pass as its logit) in a `features` column; such units are cached apart, under FEATURE_CACHE."""
    counts: dict[str, int] = field(default_factory=lambda: {"scored": 0, "cached": 0, "reused": 0})
    """Images of this evaluation scored now, taken from finished cache entries (or an interrupted run's
    part files), and reused by their bytes from the image index: the run's summary line."""
    alignments: dict[tuple[str, str], dict] = field(default_factory=dict)
    """What the alignment did per (suite, generator) (`Alignment.describe`), when there is one."""
    not_scored: dict[str, list[str]] = field(default_factory=dict)
    """Suite -> generators on disk that are not scored (a paper suite's folders that are not its columns)."""

    @property
    def name(self) -> str:
        return self.loaded.detector.name

    @property
    def cache_folder(self) -> str:
        return FEATURE_CACHE if self.features else SCORE_CACHE


def build_units(suites: list[ResolvedSuite], limit: int | None, sample: int | None = None,
                only=None, not_scored: dict[str, list[str]] | None = None, progress: bool = False) -> list[WorkUnit]:
    """The units of work: one per (suite, generator), with its file list (the first `limit` of each class,
    or UnivFD's seeded `sample`, when asked); `only`: these generator names (an unknown one is an error
    naming those available). `not_scored` collects, per suite, the generators a paper suite leaves out
    (`bench.engine.suites.scored_generators`). `progress`: a bar on stderr while the files' bytes are hashed
    (the cache key)."""
    units = []
    hashing = tqdm(total=0, unit="file", desc="hashing the files (the cache key)", leave=False, file=sys.stderr, delay=1,
                   disable=not (progress and distributed.current().is_main) or None)
    for resolved in suites:
        generators = discover(resolved.root, resolved.suite)
        # nothing to score, a misspelt 0_real/1_fake or a missing folder of a complete suite: exit 2
        check_layout(resolved.root, generators, resolved.suite)
        missing = sum(len(g.missing) for g in generators)
        if missing:
            log.warning("%s: %d listed file(s) are not on disk and are not scored (`bench data check --suite %s` "
                        "names them)", resolved.suite.name, missing, resolved.suite.name)
        # a paper (or in-the-wild) suite scores its published columns only; none of them: exit 2
        scored = require_scored_generators(resolved.root, resolved.suite, generators)
        left_out = [g for g in generators if g not in scored]
        if left_out:
            log.warning("%s", left_out_sentence(resolved.suite, left_out))
            if not_scored is not None:
                not_scored[resolved.suite.name] = [g.name for g in left_out]
        for generator in scored:
            real, fake = generator.real, generator.fake
            if limit is not None:
                real, fake = real[:limit], fake[:limit]
            if sample is not None:
                drawn = univfd_sample(generator, sample)
                real, fake = drawn.real, drawn.fake
                if drawn.note:
                    log.warning("--sample %d: %s", sample, drawn.note)
            items = [(p, 0) for p in real] + [(p, 1) for p in fake]
            relative = [relative_text(p, resolved.root) for p, _ in items]  # text even for non-UTF-8 names
            # keyed by the bytes: a file replaced by other content of the same size is scored again
            hashing.total += len(items)
            hashing.refresh()
            digests = file_digests([p for p, _ in items])
            hashing.update(len(items))
            fingerprint = content_fingerprint([(rel, label, p) for rel, (p, label) in zip(relative, items)],
                                              digests=digests)
            units.append(WorkUnit(resolved, generator, items, relative, fingerprint, digests))
    hashing.close()
    if only:
        available = sorted({unit.generator.name for unit in units})
        unknown = [g for g in only if g not in available]
        if unknown:
            raise BenchError(f"--generators {', '.join(unknown)}: not in the chosen suites "
                             f"(available: {', '.join(available)})")
        units = [unit for unit in units if unit.generator.name in only]
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


def unit_key_fields(unit: WorkUnit, loaded: LoadedDetector, config: EvalConfig, spec: DecodeSpec,
                    features: bool = False) -> dict:
    """Everything that decides a unit's scores; its hash names the cache entry. A unit that keeps feature
    vectors adds the layer they come from and what its rows hold."""
    if features:
        return {**unit_key_fields(unit, loaded, config, spec), "output": "features",
                "feature_layer": loaded.detector.feature_layer, "columns": "logit+features"}
    return {
        "detector": loaded.detector.name,
        "weights_sha256": loaded.weights.sha256,
        **({"backbone_sha256": loaded.backbone.sha256} if loaded.backbone is not None else {}),
        "model": model_fingerprint(loaded),
        "suite": unit.suite.suite.name,
        "generator": unit.generator.name,
        "protocol": spec.protocol,
        "decode": spec.key_fields(),
        "normalize": {"mean": list(loaded.preprocessing.mean), "std": list(loaded.preprocessing.std)},
        "perturbation": config.perturbation,
        # an enlarging perturbation is held to the pixel limit since issue 21: its older entries are not reused
        **({"limit_after_perturbation": True} if spec.perturbation is not None and spec.perturbation.enlarges else {}),
        "truncated_images": config.truncated,
        "files": unit.fingerprint,
        # only when aligned: a raw unit's key is the one written before alignment existed
        **({"align": spec.align.spec} if spec.align is not None else {}),
    }


UNIT_ONLY_FIELDS = ("suite", "generator", "files")
"""Key fields that say where a unit's files are, not how an image is scored: left out of the image key."""


def image_key(fields: dict) -> str:
    """The image index's key (bench.engine.store.ImageIndex): a unit's key fields without where its files
    are (suite, generator, file list), so that the same bytes scored the same way share it. Under a
    perturbation the relative path seeds its randomness (bench.engine.perturb), so the path joins the key
    of each indexed image (`path_keyed`) and only the same relative path is reused."""
    return work_key({**{k: v for k, v in fields.items() if k not in UNIT_ONLY_FIELDS}, "index": "image/1"})


def path_keyed(fields: dict) -> bool:
    """Whether an image's score depends on its relative path too: a perturbation's randomness is seeded by it."""
    return fields.get("perturbation") is not None


def indexable(run: DetectorRun, fields: dict) -> bool:
    """Whether a unit's images go through the image index: not feature runs (their rows hold vectors), nor
    aligned units (`--align match-real-quality` draws each fake's quality from its unit's reals, so an
    image's score depends on the unit it is in)."""
    return not run.features and "align" not in fields


def index_rows(unit: WorkUnit, rows: pd.DataFrame) -> pd.DataFrame:
    """A finished unit's rows as image index rows (digest, path, logit, reason, cropped)."""
    digest_of = dict(zip(unit.relative, unit.digests))
    indexed = rows[["path", "logit", "reason"]].copy()
    indexed["cropped"] = rows["cropped"] if "cropped" in rows else pd.NA
    indexed["digest"] = indexed["path"].map(digest_of)
    return indexed[indexed["digest"].notna()]


class ImageIndexes:
    """The image indexes of one evaluation, each loaded once (an evaluation asks many units)."""

    def __init__(self, store: ResultsStore) -> None:
        self.store = store
        self.loaded: dict[str, dict] = {}

    def lookup(self, fields: dict) -> dict:
        """(digest, path or None) -> an indexed row, for the image key of `fields`."""
        key = image_key(fields)
        if key not in self.loaded:
            by_path = path_keyed(fields)
            frame = self.store.image_index(key).load()
            self.loaded[key] = {(d, p if by_path else None): row for d, p, row in
                                zip(frame["digest"], frame["path"], frame.to_dict("records"))}
        return self.loaded[key]

    def add(self, fields: dict, unit: WorkUnit, rows: pd.DataFrame, *, replace: bool = False) -> None:
        """Index a unit's finished rows once (`replace`: again, after --fresh scored them anew)."""
        index = self.store.image_index(image_key(fields))
        unit_key = work_key(fields)
        if index.has(unit_key) and not replace:
            return
        indexed = index_rows(unit, rows)
        index.add(unit_key, indexed)
        known = self.lookup(fields)
        by_path = path_keyed(fields)
        for row in indexed.to_dict("records"):
            known.setdefault((row["digest"], row["path"] if by_path else None), row)


def reuse_indexed(unit: WorkUnit, run: DetectorRun, entry, indexes: ImageIndexes, batch_size: int) -> int:
    """Put into an unfinished unit's entry, as a part file, the scores the image index holds for its files'
    bytes (and, under a perturbation, their relative paths), so that only the others are scored. Returns
    how many images were reused.

    Reuse goes by whole batches of the unit's file list (the blocks `score_unit` scores): a batch is reused
    when the index holds every image of it, else scored whole, so that every image scored here meets the
    batch neighbours a fresh run of this unit gives it and its logit is bit-identical to that run's. A
    reused logit is the one computed where the bytes were first scored (equal up to float rounding)."""
    uid = (unit.suite.suite.name, unit.generator.name)
    fields = run.key_fields[uid]
    known = indexes.lookup(fields)
    if not known:
        return 0
    have = set(entry.read_partial()["path"])
    by_path = path_keyed(fields)
    hits = {i: known.get((digest, relative if by_path else None))
            for i, (relative, digest) in enumerate(zip(unit.relative, unit.digests)) if relative not in have}
    reusable = []
    for start in range(0, len(unit.relative), batch_size):
        block = [i for i in range(start, min(start + batch_size, len(unit.relative))) if i in hits]
        if block and all(hits[i] is not None for i in block):
            reusable += block
    rows = []
    for i in reusable:
        relative, hit = unit.relative[i], hits[i]
        if hit is None:
            continue
        reason = hit["reason"] if isinstance(hit["reason"], str) else None
        logit = math.nan if reason is not None else float(hit["logit"])
        cropped = hit["cropped"] if isinstance(hit["cropped"], (bool, np.bool_)) else pd.NA
        rows.append({"suite": uid[0], "generator": uid[1], "path": relative, "label": unit.items[i][1],
                     "logit": logit, "prob": probability(logit), "reason": reason, "cropped": cropped})
    if rows:
        entry.append_part(pd.DataFrame(rows), tag="reused")
    return len(rows)


def decode_spec(unit: WorkUnit, loaded: LoadedDetector, config: EvalConfig,
                align: Alignment | None = None) -> DecodeSpec:
    """How this detector's images of this unit are decoded: the suite's resolution policy (its authors', or
    `--resolution`; the detector's own with `--protocol own`) joined with the detector's preprocessing, and
    the unit's alignment."""
    from bench.engine.perturb import parse

    resolution = parse_resolution(config.resolution) if config.resolution else suite_resolution(unit.suite.suite)
    return DecodeSpec.for_detector(
        None, loaded.preprocessing, own_protocol=config.protocol == "own",
        load_truncated=config.load_truncated, perturbation=parse(config.perturbation),
        min_side=min_side_for(loaded), max_pixels=default_max_pixels(), resolution=resolution, align=align,
    )


def unit_alignment(unit: WorkUnit, config: EvalConfig) -> Alignment | None:
    """The unit's alignment under the evaluation's one policy (match-real-quality reads the unit's real
    files' JPEG qualities). A match without a real JPEG leaves the fakes as they are and says so."""
    policies = config.align_policies
    if len(policies) != 1:
        raise ValueError(f"one alignment policy per evaluation, not {policies}: evaluate() runs each in turn")
    align = alignment_for(policies[0], [path for path, label in unit.items if label == 0])
    if align is not None and align.policy == "match-real-quality" and not align.real_qualities:
        log.warning("--align match-real-quality: %s/%s has no real JPEG image, so there is no quality to match; "
                    "its fakes are scored as they are", unit.suite.suite.name, unit.generator.name)
    return align


_MIN_SIDES: dict[int, int] = {}


def min_side_for(loaded: LoadedDetector) -> int:
    """The smallest side the detector's model takes (probed once per model): smaller native-size images
    are skipped as "too small for the model" instead of failing the run."""
    if loaded.detector.preprocessing.input_size:  # a fixed-size model gets its own size anyway
        return 2
    if id(loaded.model) not in _MIN_SIDES:
        _MIN_SIDES[id(loaded.model)] = model_min_side(loaded.model)
    return _MIN_SIDES[id(loaded.model)]


def score_suites(
    detector_runs: list[DetectorRun], suites: list[ResolvedSuite], store: ResultsStore, config: EvalConfig,
    generators=None,
) -> None:
    """Fill every DetectorRun's frames with the scores (and, for feature runs, the feature vectors) of every
    (suite, generator), from the cache where its key matches, else through the one scoring loop
    (bench.engine.scoring). `generators`: only these generators."""
    not_scored: dict[str, list[str]] = {}
    units = build_units(suites, config.limit, config.sample, generators, not_scored, progress=config.progress)
    for run in detector_runs:
        run.not_scored = not_scored
    scorers: dict[str, Scorer] = {}
    indexes = ImageIndexes(store)
    aligns = [unit_alignment(unit, config) for unit in units]
    bar, counted = overall_bar(units, aligns, detector_runs, store, config)
    for unit, align in zip(units, aligns):
        uid = (unit.suite.suite.name, unit.generator.name)
        # detectors whose decode specs are equal decode each image once
        pending: dict[DecodeSpec, list[DetectorRun]] = {}
        for run in detector_runs:
            spec = decode_spec(unit, run.loaded, config, align)
            fields = unit_key_fields(unit, run.loaded, config, spec, run.features)
            run.key_fields[uid] = fields
            if align is not None:
                run.alignments[uid] = align.describe()
            entry = unit_entry(store, run, uid)
            cached = None if config.fresh else entry.read_complete(unit.relative)
            if cached is not None:
                run.frames[uid] = cached
                run.counts["cached"] += len(unit.relative)
                if indexable(run, fields) and distributed.current().is_main:
                    indexes.add(fields, unit, cached)  # a cache from before the index: indexed on first read
                continue
            pending.setdefault(spec, []).append(run)
        for spec, runs in pending.items():
            entries = [unit_entry(store, run, uid) for run in runs]
            # one process scores an entry at a time; another waits, then reuses what it finished. Under
            # torchrun rank 0 holds the locks for all the ranks, which score the entries together
            procs = distributed.current()
            lock = locked_entries(entries, on_wait=_say_waiting) if procs.is_main else contextlib.nullcontext()
            with lock:
                procs.barrier()  # rank 0 holds the locks: every rank looks at the entries only now
                if not config.fresh:
                    for run, entry in zip(list(runs), entries):
                        cached = entry.read_complete(unit.relative)
                        if cached is not None:
                            run.frames[uid] = cached
                            run.counts["cached"] += len(unit.relative)
                            runs.remove(run)
                if (uid, spec) not in counted:  # its entry looked finished before and was found damaged
                    counted.add((uid, spec))
                    bar.total += len(unit.relative)
                    bar.refresh()
                if not runs:
                    bar.update(len(unit.relative))  # another process finished it while this one waited
                    continue
                for run in runs:
                    if (run.name, run.features) not in scorers:
                        scorer = prepare_scorer(
                            run.loaded.model, run.loaded.preprocessing, config.device, compile=config.compile
                        )
                        if run.features:  # [B, 1 + D]: the logit, then the vector its head read
                            scorer = logits_and_features(run.loaded.detector, scorer, scorer.model)
                        scorers[(run.name, run.features)] = scorer
                frames = score_unit(unit, runs, {run.name: scorers[(run.name, run.features)] for run in runs}, spec,
                                    store, config, indexes, bar)
            for run in runs:
                run.frames[uid] = frames[run.name]
                if indexable(run, run.key_fields[uid]) and distributed.current().is_main:
                    indexes.add(run.key_fields[uid], unit, frames[run.name], replace=config.fresh)
    bar.refresh()  # the final count, drawn once before leave=False clears it (tqdm skips updates within 0.1 s)
    bar.close()


def overall_bar(units: list[WorkUnit], aligns: list[Alignment | None], detector_runs: list[DetectorRun],
                store: ResultsStore, config: EvalConfig) -> tuple[tqdm, set]:
    """One progress bar (stderr, with an ETA) over the images this evaluation has to score: each unit's files
    once per group of detectors that decode them alike and whose cache entry is not finished (a stat per
    entry). Returns the bar and the (suite, generator), decode spec pairs its total counts, so that an entry
    found damaged later is added to the total then. Hidden off a terminal, with -q and when there is nothing
    to score."""
    total, counted = 0, set()
    for unit, align in zip(units, aligns):
        uid = (unit.suite.suite.name, unit.generator.name)
        for run in detector_runs:
            spec = decode_spec(unit, run.loaded, config, align)
            fields = unit_key_fields(unit, run.loaded, config, spec, run.features)
            if (uid, spec) not in counted and (
                    config.fresh or not store.cache_entry(work_key(fields), run.cache_folder).is_complete()):
                counted.add((uid, spec))
                total += len(unit.relative)
    names = ", ".join(run.name for run in detector_runs)
    # leave=False: the caller's summary line replaces it, and a sweep's levels do not stack a bar each
    bar = tqdm(total=total, unit="img", desc=f"scoring {names}", file=sys.stderr, dynamic_ncols=True, leave=False,
               disable=not (config.progress and distributed.current().is_main and total) or None)
    return bar, counted


def unit_entry(store: ResultsStore, run: DetectorRun, uid: tuple[str, str]):
    """The cache entry of a detector's unit (its key fields must be set)."""
    return store.cache_entry(work_key(run.key_fields[uid]), run.cache_folder)


def _say_waiting(entry) -> None:
    log.warning("another bench process is scoring %s; waiting for it, then reusing its scores", entry.folder)


def score_unit(
    unit: WorkUnit, runs: list[DetectorRun], scorers: dict[str, Scorer], spec: DecodeSpec,
    store: ResultsStore, config: EvalConfig, indexes: ImageIndexes | None = None, bar=None,
) -> dict[str, pd.DataFrame]:
    """Score one generator for detectors sharing a decode spec; rows stream to the cache's part files, so
    a killed run resumes where it stopped.

    Under torchrun (bench.engine.distributed) every process runs this for every unit: each scores a disjoint,
    unpadded share of the images not scored yet into its own part files, and rank 0 merges them into the
    unit's scores once all have finished; the barriers keep the processes' views of the cache in step."""
    procs = distributed.current()
    uid = (unit.suite.suite.name, unit.generator.name)
    entries = {}
    done: dict[str, pd.DataFrame] = {}
    reused_here: dict[str, int] = {}
    for run in runs:
        entry = unit_entry(store, run, uid)
        if config.fresh and procs.is_main:
            entry.discard_all()
        elif procs.is_main and indexes is not None and indexable(run, run.key_fields[uid]):
            # the same bytes scored the same way in another unit (another folder, generator or file name)
            entry.ensure(run.key_fields[uid])
            reused = reuse_indexed(unit, run, entry, indexes, config.batch_size)
            run.counts["reused"] += reused
            reused_here[run.name] = reused
            if reused:
                log.info("%s | %s/%s: reusing the scores of %d of %d images whose bytes were scored before",
                         run.name, *uid, reused, len(unit.relative))
        entries[run.name] = entry
    procs.barrier()  # --fresh has emptied the entries, the index has filled them, before any process reads them
    for run in runs:
        entries[run.name].ensure(run.key_fields[uid])
        done[run.name] = entries[run.name].read_partial()
    # images every detector of this group has already scored in an interrupted run are not decoded again
    finished_paths = set.intersection(*(set(frame["path"]) for frame in done.values()))
    # Batches are fixed blocks of the unit's file list, and processes take whole blocks in turn: every
    # image meets the same batch neighbours however many processes score the unit, or a resumed run
    # (part files hold whole batches), so every logit is bit-identical to a single-process run's.
    size = config.batch_size
    blocks = [[i for i in range(start, min(start + size, len(unit.relative)))
               if unit.relative[i] not in finished_paths] for start in range(0, len(unit.relative), size)]
    blocks = [block for block in blocks if block]
    todo = [i for block in blocks for i in block]
    procs.barrier()  # every process has the same `todo` before any adds a part file
    mine = procs.shard(blocks)
    share = [i for block in mine for i in block]
    batch_ranges, start = [], 0
    for block in mine:
        batch_ranges.append(range(start, start + len(block)))
        start += len(block)
    buffers: dict[str, list[dict]] = {name: [] for name in entries}
    suite_name, generator = uid
    for run in runs:  # scored by an interrupted run (part files): counted as from the cache
        run.counts["cached"] += len(set(done[run.name]["path"])) - reused_here.get(run.name, 0)
    if bar is None:
        bar = tqdm(total=len(unit.relative), unit="img", leave=False, file=sys.stderr,
                   disable=not (config.progress and procs.is_main) or None)
    ranks = f" [rank 0's share, {procs.world} processes]" if procs.distributed else ""
    bar.set_postfix_str(f"{suite_name}/{generator}{ranks}", refresh=False)
    bar.update(len(unit.relative) - len(todo))  # finished before (part files, the image index)
    if procs.distributed:  # the other ranks' shares are not seen here: count them as done when they are
        bar.update(len(todo) - len(share))
    for run in runs:
        run.counts["scored"] += len(todo)
    if share:
        since_flush = 0
        part_every = settings.part_every()
        batches = score_images(
            [unit.items[i] for i in share], scorers, spec, device=config.device, batch_size=config.batch_size,
            workers=config.worker_count, amp=config.amp, progress=bar.update,
            keys=[unit.relative[i] for i in share], batches=batch_ranges,
        )
        for rows in batches:
            for row in rows:
                i = share[row.index]
                for run in runs:
                    name, value = run.name, row.values.get(run.name)
                    vector = None
                    if run.features and value is not None:
                        value, vector = float(value[0]), value[1:].numpy().astype("float32")
                    _require_finite(value, runs, name, unit.relative[i])
                    buffers[name].append(_row(suite_name, generator, unit, i, value, row.reasons.get(name),
                                              row.cropped, vector, run.features))
            since_flush += len(rows)
            if since_flush >= part_every:
                for name, entry in entries.items():
                    entry.append_part(pd.DataFrame(buffers[name]), tag=procs.tag())
                    buffers[name] = []
                since_flush = 0
    log.debug("%s%s/%s: scored %d of %d images (%d scored before)",
              f"rank {procs.rank} of {procs.world}: " if procs.distributed else "", suite_name, generator,
              len(share), len(unit.relative), len(unit.relative) - len(todo))
    for name, entry in entries.items():
        entry.append_part(pd.DataFrame(buffers[name]), tag=procs.tag())
    procs.barrier()  # every process's rows are in part files
    frames = {}
    if not procs.is_main:
        procs.barrier()  # rank 0 has merged them
        return {name: entry.read() for name, entry in entries.items()}
    for name, entry in entries.items():
        rows = entry.read_partial()
        order = {rel: i for i, rel in enumerate(unit.relative)}
        rows = rows[rows["path"].isin(order)].copy()
        rows["_order"] = rows["path"].map(order)
        rows = rows.sort_values("_order").drop(columns="_order").reset_index(drop=True)
        if len(rows) != len(unit.relative):
            raise RuntimeError(f"{suite_name}/{generator}: {len(rows)} rows for {len(unit.relative)} files")
        entry.finish(rows)
        frames[name] = rows
    procs.barrier()
    return frames


def _require_finite(value, runs: list[DetectorRun], name: str, relative: str) -> None:
    """A NaN or infinite logit is a broken model or checkpoint, not a score: stop before it is cached."""
    if value is None or math.isfinite(float(value)):
        return
    loaded = next(run.loaded for run in runs if run.name == name)
    raise BenchError(
        f"detector {name} with weights {loaded.weights.label} ({loaded.weights.path}) gave a non-finite logit "
        f"({float(value)}) on {relative}: the checkpoint or the model is broken. Nothing non-finite was cached; "
        "check the weights (`bench list weights`) or retrain."
    )


def _row(suite: str, generator: str, unit: WorkUnit, index: int, logit: float | None, reason: str | None,
         cropped: bool = False, vector=None, features: bool = False) -> dict:
    logit = math.nan if logit is None else float(logit)
    row = {
        "suite": suite, "generator": generator, "path": unit.relative[index], "label": unit.items[index][1],
        "logit": logit, "prob": probability(logit), "reason": reason, "cropped": bool(cropped),
    }
    if features:
        row["features"] = vector
    return row


def metrics_for(scores: pd.DataFrame, suite_order: list[str], generator_order: dict[str, list[str]], *,
                prob_precision: str = DEFAULT_PROB_PRECISION, calibration=None, ece_bins: int = DEFAULT_BINS) -> dict:
    """metrics.json content: per generator, per suite mean, overall mean over all generators, from the
    stored logits (bench.engine.metrics), with the probability precision and any calibrated threshold recorded;
    the calibration quality per generator and mean (`calibration_quality`, bench.engine.calibration_quality)
    and the reliability bins per suite and over the run (`reliability`)."""
    calibrated = None if calibration is None else calibration.threshold_logit
    suites = {}
    every_generator = []
    for suite in suite_order:
        per_generator = {}
        for generator in generator_order[suite]:
            rows = scores[(scores["suite"] == suite) & (scores["generator"] == generator)]
            per_generator[generator] = metrics_from_scores(rows, prob_precision=prob_precision,
                                                           calibrated_logit=calibrated)
        every_generator.extend(per_generator.values())
        mean = mean_metrics(list(per_generator.values()))
        in_suite = scores[scores["suite"] == suite]
        _count_distinct(mean, in_suite)
        shared = shared_reals(in_suite).get(suite, 0)
        if shared:
            mean["notes"].append(f"{shared} real images are shared by several generators (one pool of reals): each "
                                 "generator's metrics compare its fakes with them, and n_real counts them once")
        suites[suite] = {"generators": per_generator, "mean": mean}
    overall = mean_metrics(every_generator)
    _count_distinct(overall, scores[scores["suite"].isin(suite_order)])
    metrics = {"schema_version": SCHEMA_VERSION, "prob_precision": prob_precision,
               "exact_order_metrics": list(EXACT_ORDER_KEYS),
               "calibration": None if calibration is None else calibration.describe(),
               "notes": [*caveats(suites), *([calibration.note] if calibration is not None and calibration.note else [])],
               "suites": suites, "mean": overall}
    return attach_quality(metrics, scores, ece_bins, calibration)


def caveats(suites: dict) -> list[str]:
    """metrics.json's top-level `notes`: the caveats that move a number shown in tables and the report, each
    prefixed with where it applies (`suite/generator: ...`, `suite (mean): ...`). For now the ties that move
    AP (bench.engine.metrics.tie_note); `assemble_run` adds the run's own (a calibration set's domain)."""
    found = []
    for suite, block in suites.items():
        for generator, values in block["generators"].items():
            found += [f"{suite}/{generator}: {note}" for note in values.get("notes", []) if note.startswith(TIE_NOTE_PREFIX)]
        found += [f"{suite} (mean): {note}" for note in block["mean"].get("notes", []) if note.startswith(TIE_NOTE_PREFIX)]
    return found


def _count_distinct(mean: dict, rows: pd.DataFrame) -> None:
    """A mean's n_real / n_fake: the distinct images of each class (a shared pool of reals counted once)."""
    mean["n_real"], mean["n_fake"] = distinct_images(rows)


def collect_scores(run: DetectorRun, suite_names: list[str]) -> pd.DataFrame:
    """All of a detector's rows (scored and skipped) for the given suites, in generator order."""
    frames = [frame for (suite, _), frame in run.frames.items() if suite in suite_names]
    if not frames:
        return pd.DataFrame(columns=[*SCORE_COLUMNS, "reason"])
    return pd.concat(frames, ignore_index=True)


def cropped_record(scored: pd.DataFrame) -> dict:
    """`cropped.csv` (suite, generator, path of every image cropped to an even size before scoring) and
    how many scored images have no record (scored into the cache before it was kept)."""
    flags = scored["cropped"] if "cropped" in scored else pd.Series([pd.NA] * len(scored), index=scored.index)
    known = flags.notna()
    rows = scored[known & (flags == True)][["suite", "generator", "path"]]  # noqa: E712 (NA-aware)
    return {"rows": rows.reset_index(drop=True), "unknown": int((~known).sum())}


def _per_suite(run: DetectorRun, suite_names: list[str], key: str) -> dict:
    """A key field as it was for each suite's units (the same for every generator of a suite)."""
    found = {}
    for (suite, _), fields in run.key_fields.items():
        if suite in suite_names:
            found.setdefault(suite, fields[key])
    return found


def run_info(run: DetectorRun, suites: list[ResolvedSuite], config: EvalConfig, data_root: Path,
             started_at: str, note: str | None) -> dict:
    """run.json: what was evaluated, how, with what, where."""
    loaded = run.loaded
    suite_names = [s.suite.name for s in suites]
    return {
        "schema_version": SCHEMA_VERSION,
        "status": "running",
        "detector": loaded.detector.name,
        "display_name": loaded.detector.display_name,
        "reported_method": loaded.detector.reported_method,
        "weights": {"name": loaded.weights.name, "sha256": loaded.weights.sha256, "path": str(loaded.weights.path)},
        "backbone": None if loaded.backbone is None else {  # a frozen backbone's own file (UnivFD's CLIP)
            "name": loaded.backbone.name, "sha256": loaded.backbone.sha256, "path": str(loaded.backbone.path)},
        "suites": suite_names,
        "suite_roots": {s.suite.name: str(s.root) for s in suites},
        "suite_listings": {s.suite.name: s.suite.listing for s in suites if s.suite.listing},
        "data_root": str(data_root),
        "protocol_choice": config.protocol,
        "protocol": _per_suite(run, suite_names, "protocol"),
        "decode": _per_suite(run, suite_names, "decode"),
        "preprocessing": dataclasses.asdict(loaded.preprocessing),
        "even_crop": loaded.preprocessing.even_crop,
        "perturbation": config.perturbation,
        "align": config.align,
        "align_detail": ({f"{suite}/{generator}": info for (suite, generator), info in run.alignments.items()}
                         if config.align == "match-real-quality" else None),
        "resolution_choice": config.resolution,
        "truncated_images": config.truncated,
        "limit_per_class": config.limit,
        "generators_not_scored": run.not_scored,  # a paper suite's folders that are not its table's columns
        "sample_per_class": config.sample,
        "package_version": bench.__version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "device": str(config.device),
        "processes": distributed.current().world,
        "amp": config.amp,
        "prob_precision": config.prob_precision,
        "calibration": None if run.calibration is None else run.calibration.describe(),
        "started_at": started_at,
        "finished_at": None,
        "note": note,
    }


WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM}
"""OSErrors that mean "the results store cannot be written" (full disk, read-only or forbidden folder)."""


def write_failure(error: OSError, where: Path) -> BenchError:
    """The message for a results store that stopped taking writes mid-run: the path, the cause, and that
    finished work is kept (the cache's part files) so a rerun resumes."""
    path = error.filename or where
    return BenchError(
        f"cannot write {path} ({error.strerror or error}). Scores finished so far are kept in the cache under "
        f"{where}; free space or fix the folder's permissions, then rerun the same command: it resumes."
    )


@dataclass
class AssembledRun:
    """Everything a run folder holds, computed once from a detector's scores: what `evaluate` returns and
    what `write_run` writes, so the two cannot differ."""

    info: dict
    """run.json content (status "finished"; `write_run` adds the run id)."""
    metrics: dict
    """metrics.json content, localisation included."""
    scored: pd.DataFrame
    """scores.parquet: SCORE_COLUMNS, one row per scored image."""
    skipped: pd.DataFrame
    """suite, generator, path, reason of every file that could not be used."""
    cropped: dict
    """`cropped_record` of the scored images."""


def assemble_run(run: DetectorRun, suites: list[ResolvedSuite], config: EvalConfig, data_root: Path,
                 started_at: str, note: str | None = None) -> AssembledRun:
    """A detector's run from its (cached or fresh) scores: metrics per generator and suite, the
    localisation metrics on suites with forgery masks, and run.json's provenance and counts."""
    suite_names = [s.suite.name for s in suites]
    everything = collect_scores(run, suite_names)
    usable = everything[everything["reason"].isna()]
    scored = usable[SCORE_COLUMNS].reset_index(drop=True)
    skipped = everything[everything["reason"].notna()][["suite", "generator", "path", "reason"]].reset_index(drop=True)
    cropped = cropped_record(usable)
    generator_order = {s: [g for (suite, g) in run.frames if suite == s] for s in suite_names}
    metrics = metrics_for(usable, suite_names, generator_order, prob_precision=config.prob_precision,
                          calibration=run.calibration, ece_bins=config.ece_bins)
    tied = [note for note in metrics["notes"] if "(mean)" not in note.split(":", 1)[0]]
    if tied:
        log.warning("%s: float32 ties move AP by more than 0.1 point on %d generator(s); the paper's AP is kept "
                    "and AP from the exact order is written beside it (metrics.json: ap_exact, notes). %s",
                    run.name, len(tied), tied[0] + (f" (and {len(tied) - 1} more)" if len(tied) > 1 else ""))
    attach_spread(metrics)
    if config.intervals:
        # computed once here from the scores; tables, checks, the report and the API read them from metrics.json
        boot = bootstrap_run(usable, config.uncertainty, prob_precision=config.prob_precision,
                             calibrated_logit=None if run.calibration is None else run.calibration.threshold_logit)
        attach_intervals(metrics, boot.blocks(suite_names, generator_order), config.uncertainty)
    # the maps need the masks through the same transforms: under a perturbation its geometry carries them
    # along (warp_mask); not under an alignment (the masks are not re-encoded) or a resolution policy other
    # than the suites' own (crops)
    if config.localisation and config.align == RAW and config.resolution is None:
        from bench.engine.localisation import localise_run

        blocks = localise_run(run.loaded, suites, device=config.device, limit=config.limit, sample=config.sample,
                              progress=config.progress, own_protocol=config.protocol == "own",
                              perturbation=config.perturbation)
        if blocks:
            metrics["localisation"] = blocks
    info = run_info(run, suites, config, data_root, started_at, note)
    info.update(
        status="finished",
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # images, not rows: a real of a pool shared by several generators is a row of each
        n_images={s: int(scored.loc[scored["suite"] == s, "path"].nunique()) for s in suite_names},
        n_skipped=int(len(skipped)),
        n_cropped_to_even=int(len(cropped["rows"])),
        cropped_unknown=cropped["unknown"],
        work_keys={f"{k[0]}/{k[1]}": work_key(v) for k, v in run.key_fields.items()},
    )
    return AssembledRun(info, metrics, scored, skipped, cropped)


def _slug(text: str) -> str:
    """A run.json value as part of a folder name: letters, digits and `.+_-` only."""
    return re.sub(r"[^A-Za-z0-9.+_]+", "-", str(text)).strip("-")


def weights_tag(weights: dict) -> str:
    """How a run's folder names its weights: the tag of a named entry (`lfm:official` -> `official`), else
    the file's stem and the start of its sha256 (`last-1a2b3c4d`), so that two checkpoints called last.pth
    name different folders."""
    name = weights.get("name")
    if name:
        return str(name).split(":", 1)[-1]
    stem = Path(str(weights.get("path") or "file")).stem
    return f"{stem}-{str(weights.get('sha256') or '')[:8]}".rstrip("-")


def run_name(info: dict, stamp: str) -> str:
    """A run folder's name from what distinguishes runs: `<stamp>-<detector>-<weights>-<suites>`, then the
    perturbation, `--protocol own`, a sample or limit per class and the calibration set when there are any,
    e.g. `20261206-071634-lfm-official-demo-gan+demo-diffusion-jpeg-q-75-cal-demo-val` (at most 120
    characters; `bench list runs` shows every setting in full)."""
    parts = [stamp, file_stem(info["detector"]), weights_tag(info.get("weights") or {}), "+".join(info["suites"])]
    if info.get("perturbation"):
        parts.append(info["perturbation"])
    if info.get("protocol_choice") not in (None, "paper"):
        parts.append(f"protocol-{info['protocol_choice']}")
    if info.get("sample_per_class"):
        parts.append(f"sample{info['sample_per_class']}")
    if info.get("limit_per_class"):
        parts.append(f"limit{info['limit_per_class']}")
    if info.get("calibration"):
        on = str(info["calibration"].get("on"))
        parts.append(f"cal-{Path(on).name if '/' in on else on}")
    return "-".join(_slug(part) for part in parts if _slug(part))[:120]


def require_scored_images(assembled: AssembledRun) -> None:
    """BenchError (exit 2) when a suite of the run has no scored image (every file unusable): its metrics
    would all be undefined, and a run folder saying "n=0" would look finished. The message gives the
    commonest reasons; the scores of the other suites stay in the cache, so a rerun reuses them."""
    info, skipped = assembled.info, assembled.skipped
    empty = [suite for suite in info["suites"] if not info["n_images"].get(suite)]
    if not empty:
        return
    parts = []
    for suite in empty:
        rows = skipped[skipped["suite"] == suite]
        counts = rows["reason"].value_counts()
        reasons = "; ".join(f"{n} x {reason} (e.g. {rows[rows['reason'] == reason]['path'].iloc[0]})"
                            for reason, n in counts.head(3).items())
        more = f"; and {len(counts) - 3} other reasons" if len(counts) > 3 else ""
        parts.append(f"{suite} ({info['suite_roots'][suite]}): none of its {len(rows)} files could be scored: "
                     f"{reasons}{more}")
    raise BenchError(f"{info['detector']}: nothing was scored on {', '.join(empty)}, so no result was written. "
                     + " | ".join(parts) + ". See `bench data check --suite ...` for every file's reason.")


def write_run(assembled: AssembledRun, store: ResultsStore) -> Path:
    """Write an assembled run into a new run folder: run.json ("running"), the scores, skipped and cropped
    files, metrics.json, then run.json ("finished"). A store that stops taking writes marks the folder
    failed and raises the message that says finished scores are kept."""
    info = assembled.info
    folder = store.new_run_dir(run_name(info, datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")))
    info = {"run_id": folder.name, **info}
    assembled.info = info
    try:
        atomic_write_json(folder / "run.json", {**info, "status": "running", "finished_at": None})
        atomic_write_parquet(folder / "scores.parquet", assembled.scored)
        skipped = assembled.skipped
        atomic_write_csv(folder / "skipped.csv", skipped[["path", "reason"]].assign(
            path=skipped["suite"] + "/" + skipped["path"]).reset_index(drop=True))
        atomic_write_csv(folder / "cropped.csv", assembled.cropped["rows"])
        atomic_write_json(folder / "metrics.json", assembled.metrics)
        atomic_write_json(folder / "run.json", info)
    except OSError as error:
        if error.errno not in WRITE_ERRNOS:
            raise
        failed = {**info, "status": "failed", "finished_at": None,
                  "error": f"{error.strerror or error}: {error.filename or folder}"}
        try:  # the disk may take this small file even when it refused a large one
            atomic_write_json(folder / "run.json", failed)
        except OSError:
            log.warning("could not mark %s as failed either", folder / "run.json")
        raise write_failure(error, folder) from error
    return folder
