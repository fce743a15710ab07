"""The training recipe: `TrainConfig` and its defaults, the result of a run, the lr schedule, seeds."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from bench.engine.store import default_results_root
from bench.errors import BenchError
from bench.train.parallel import Processes

DEMO_RECIPE = {"resize": None, "crop": 96}
"""The demo recipe (bundled demo weights): the 128x128 demo images at native size, 96x96 crops."""

# The conventions of the official training code (NPR's train.py, networks/trainer.py, data/datasets.py,
# which LFM's code extends; github.com/chuangchuangtan/NPR-DeepfakeDetection): the defaults. The other
# values are options, and every effective value is written to the run's config.json.
LR_SCHEDULES = ("official", "step")
CHECKPOINT_RULES = ("last", "best")
VAL_TRANSFORMS = ("center-crop", "test-protocol")
LEGACY_RECIPE = {"lr_schedule": "step", "checkpoint": "best", "val_transform": "test-protocol"}
"""What runs recorded before these fields existed did: a config.json without them resumes as it began."""


@dataclass(frozen=True)
class TrainConfig:
    """Every value of a training recipe. `None` means "the detector's or the machine's default", which
    `train` resolves and records."""

    detector: str
    train_set: str
    """`progan4`, `demo`, another training suite name, or a folder of `0_real`/`1_fake` images."""
    val_set: str | None = None
    """Default: the train set's `val` split (progan4 -> progan4-val, demo -> demo-val, `X/train` -> `X/val`)."""
    data_root: str | None = None
    output: str | None = None
    """Default: `<results>/train/<detector>-<train set>-<timestamp>`."""
    epochs: int = 50
    batch_size: int = 32
    """The global batch: split over the processes under torchrun."""
    lr: float | None = None
    """Default: the detector's `train_lr` (LFM 1e-4, NPR 2e-4, as their READMEs give)."""
    lr_decay: float = 0.9
    lr_step: int = 10
    lr_schedule: str = "official"
    """When the x lr_decay steps take effect (epochs 0-based). `official`: as NPR's train.py, which decays
    at the end of epoch e when e % lr_step == 0 and e != 0, so epoch e runs at lr * lr_decay **
    ((e - 1) // lr_step) (epochs 0-10 at lr, 11-20 at 0.9 lr, ...); `step`: lr * lr_decay ** (e // lr_step),
    one epoch earlier (epochs 0-9 at lr, 10-19 at 0.9 lr, ...)."""
    optimizer: str = "adam"
    """`adam` (the papers) or `sgd` (no momentum, as the NPR code's `--optim sgd`)."""
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    resize: int | None = 256
    """Training images are resized to resize x resize first; None keeps their native size."""
    crop: int | None = 224
    """Random crop size; None: no crop."""
    flip: bool = True
    aux_loss_weight: float | None = None
    """Weight of the auxiliary loss. Default: the detector's (LFM's Random-K Sampling term: 0.02)."""
    seed: int = 0
    deterministic: bool = True
    """torch.use_deterministic_algorithms (warn-only) and no cudnn benchmarking."""
    sync_bn: bool = True
    """Under torchrun, BatchNorm statistics over the global batch (as one process would see it)."""
    max_steps_per_epoch: int | None = None
    workers: int | None = None
    """Loader processes per training process. Default: min(8, CPUs per process)."""
    device: str = "auto"
    amp: str | None = None
    """`off` (float32, as the official training code) or `bf16` (CUDA autocast). Default: off."""
    checkpoint: str = "last"
    """Which checkpoint the run recommends for evaluation: `last` (the official train.py saves the last
    epoch; its early-stopping option is unused) or `best` (best validation ACC, then AP). Both files are
    written either way."""
    val_transform: str = "center-crop"
    """How validation images are prepared. `center-crop`: the official validation loader, the training
    resize then a centre crop of the training crop size (Resize((256, 256)) -> CenterCrop(224)), truncated
    files loaded; `test-protocol`: the val split's test-time protocol (256x256 or native, no crop),
    unusable files skipped."""
    init: str = "none"
    """`none` (random initialisation) or `imagenet`: the detector's ImageNet-pretrained weights from a local
    file (timm's for `timm:` names, torchvision's ResNet-50 for CNNDetection, as its paper fine-tuned)."""
    mask_selection: str = "none"
    """Which training fakes get their forgery mask (`1_fake_masks`), for a detector whose loss uses masks
    (LAE): `none`, `random` (a seeded draw), `all`, or `active` (the model picks after
    `mask_query_epoch` epochs). See bench.train.masks."""
    mask_budget: float = 0.03
    """`random`/`active`: masks for this fraction of the training images (LAE: under 3%)."""
    mask_query_epoch: int = 1
    """`active`: epochs trained before the model scores the unmasked fakes and requests masks."""

    def __post_init__(self) -> None:
        problems = []
        if self.mask_selection not in ("none", "random", "all", "active"):
            problems.append("mask_selection must be none, random, all or active")
        if not 0 <= self.mask_budget <= 1:
            problems.append("mask_budget must be a fraction in [0, 1]")
        if self.mask_query_epoch < 0:
            problems.append("mask_query_epoch must be at least 0")
        for name in ("epochs", "batch_size", "lr_step"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        for name in ("resize", "crop"):
            value = getattr(self, name)
            if value is not None and value < 2:
                problems.append(f"{name} must be at least 2 (or none)")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            problems.append("max_steps_per_epoch must be at least 1 (or none)")
        if self.lr is not None and not self.lr > 0:
            problems.append("lr must be positive")
        if not 0 < self.lr_decay <= 1:
            problems.append("lr_decay must be in (0, 1]")
        if self.optimizer not in ("adam", "sgd"):
            problems.append("optimizer must be adam or sgd")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            problems.append("beta1 and beta2 must be in [0, 1)")
        if self.weight_decay < 0 or (self.aux_loss_weight is not None and self.aux_loss_weight < 0):
            problems.append("weight_decay and aux_loss_weight must be at least 0")
        if self.workers is not None and self.workers < 0:
            problems.append("workers must be at least 0")
        if self.amp not in (None, "off", "bf16"):
            problems.append("amp must be bf16 or off")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
        if self.checkpoint not in CHECKPOINT_RULES:
            problems.append(f"checkpoint must be one of {', '.join(CHECKPOINT_RULES)}")
        if self.val_transform not in VAL_TRANSFORMS:
            problems.append(f"val_transform must be one of {', '.join(VAL_TRANSFORMS)}")
        if self.init not in ("none", "imagenet"):
            problems.append("init must be none or imagenet")
        if self.crop is not None and self.resize is not None and self.crop > self.resize:
            problems.append(f"crop {self.crop} is larger than the resized image ({self.resize})")
        if problems:
            raise BenchError("invalid training recipe: " + "; ".join(problems))


@dataclass
class TrainResult:
    output: Path
    detector: str
    epochs: int
    """Epochs completed in all (this run and the ones it resumed)."""
    best_epoch: int | None
    best: dict
    last: dict
    best_path: Path
    last_path: Path
    history: list[dict]
    resumed_from: int | None
    seconds: float
    is_main: bool = True
    """False on torchrun ranks other than 0 (which write nothing)."""

    checkpoint: str = "last"
    """The rule that chose `recommended_path` (TrainConfig.checkpoint)."""

    @property
    def recommended_path(self) -> Path:
        """The checkpoint to evaluate, by the run's checkpoint rule."""
        return self.best_path if self.checkpoint == "best" else self.last_path

    def summary(self) -> dict:
        return {
            "output": str(self.output), "detector": self.detector, "epochs": self.epochs,
            "best_epoch": self.best_epoch, "best": self.best, "last": self.last,
            "best_path": str(self.best_path), "last_path": str(self.last_path),
            "checkpoint": self.checkpoint, "recommended_path": str(self.recommended_path),
            "resumed_from": self.resumed_from, "seconds": round(self.seconds, 3),
        }


def recipe_defaults(train_set: str) -> dict:
    """Recipe values implied by a train set: the demo recipe for `demo`, nothing otherwise."""
    return dict(DEMO_RECIPE) if train_set in ("demo", "demo-train", "demo-local-train") else {}


def lr_at(config: TrainConfig, epoch: int, base_lr: float) -> float:
    """The lr of `epoch` (0-based) under `config.lr_schedule` (see TrainConfig.lr_schedule)."""
    if config.lr_schedule == "official":
        decays = max(0, (epoch - 1) // config.lr_step)
    else:
        decays = epoch // config.lr_step
    return base_lr * config.lr_decay ** decays


def mix_seed(*parts) -> int:
    """A 63-bit seed from (seed, purpose, epoch, ...): stable across runs, machines and Python versions."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Re-seed the global RNGs that the model's own randomness draws from (dropout, Random-K Sampling)."""
    value = mix_seed(seed, "forward", epoch, rank)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % 2**32)


def resolve_config(config: TrainConfig, detector, device: torch.device, procs: Processes) -> TrainConfig:
    """Fill the `None` defaults with the detector's and the machine's values (what gets recorded)."""
    from bench.engine.suites import default_data_root

    if config.batch_size % procs.world:
        raise BenchError(f"--batch-size {config.batch_size} (the global batch) does not split over "
                         f"{procs.world} processes; use a multiple of {procs.world}")
    if detector.preprocessing.even_crop and config.crop is not None and config.crop % 2:
        raise BenchError(f"detector {detector.name} needs even image sizes; use an even --crop")
    fixed = detector.preprocessing.input_size
    if fixed is not None and config.crop != fixed:
        raise BenchError(f"detector {detector.name} takes {fixed}x{fixed} images only; use --crop {fixed}")
    if config.init == "imagenet" and detector.imagenet_init is None:
        raise BenchError(f"detector {detector.name} has no ImageNet initialisation; drop --init imagenet "
                         "(it applies to timm: detectors and cnndetection)")
    from bench import settings

    local_world = settings.torchrun_layout()["local_world"] if procs.distributed else 1
    workers = config.workers
    if workers is None:
        workers = min(8, max(0, (os.cpu_count() or 1) // local_world - 1))
    output = config.output
    if output is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S") if procs.is_main else None
        if procs.distributed:  # every rank must agree on the folder rank 0 names
            box = [stamp]
            dist.broadcast_object_list(box, src=0)
            stamp = box[0]
        train_name = Path(config.train_set).name or "train"
        output = str(default_results_root() / "train" / f"{detector.name}-{train_name}-{stamp}")
    return dataclasses.replace(
        config,
        data_root=str(Path(config.data_root).expanduser().absolute()) if config.data_root else str(default_data_root()),
        output=str(Path(output).expanduser().absolute()),
        lr=config.lr if config.lr is not None else detector.train_lr,
        aux_loss_weight=config.aux_loss_weight if config.aux_loss_weight is not None else detector.aux_loss_weight,
        workers=workers,
        amp=config.amp or "off",  # the official training code runs in float32
    )


RECIPE_FIELDS = (
    "detector", "train_set", "val_set", "data_root", "output", "epochs", "batch_size", "lr", "lr_decay",
    "lr_step", "optimizer", "beta1", "beta2", "weight_decay", "resize", "crop", "flip", "aux_loss_weight",
    "seed", "deterministic", "sync_bn", "max_steps_per_epoch", "workers", "device", "amp", "lr_schedule",
    "checkpoint", "val_transform", "init",
    "mask_selection", "mask_budget", "mask_query_epoch",
)
"""The TrainConfig fields `bench train` sets from its options."""
