"""Training a registered detector with the paper's recipe (NPR / LFM training code), reproducibly.

Recipe (every value is a `TrainConfig` field, recorded in `config.json` and in each checkpoint's sidecar):
Adam (beta1 0.9), global batch 32, Resize((256, 256)) -> RandomCrop(224) -> RandomHorizontalFlip ->
Normalize, BCE-with-logits (+ the detector's auxiliary loss, LFM's Random-K Sampling), lr x0.9 every 10
epochs, 50 epochs; lr = the detector's `train_lr` (1e-4 LFM, 2e-4 NPR). Validation after every epoch
on a `val` split (never a test suite) with the test-time protocol of that split; `best` by val ACC, then
AP.

Reproducibility: everything random is a function of (seed, epoch, ...), never of how the run got there.
- the data order of epoch e is a permutation drawn from a generator seeded with (seed, e);
- the crop and flip of image i in epoch e come from a generator seeded with (seed, e, i), inside the
  dataset, so they do not depend on the number of loader workers or processes;
- the global RNGs (torch, numpy, python), which the model's own randomness uses (LFM's dropout and
  Random-K Sampling), are re-seeded at the start of every epoch with (seed, e, rank).
So a run resumed from `state.pt` (written at the end of every epoch: model, optimizer, epoch, step, best
so far, log, and the RNG states, which are restored too) replays the remaining epochs exactly: on CPU its
weights are bit-identical to an uninterrupted run's, whatever the loader worker count.

Distributed (torchrun): `--batch-size` is the global batch; rank r takes every world-size-th image of
each global batch. BatchNorm statistics are computed over the whole global batch (torch's SyncBatchNorm
on CUDA, `GlobalBatchNorm` on CPU/gloo where torch's refuses to run), and each rank's loss is weighted by
its share of the global batch, so one step on N processes is the step one process takes on the same
global batch. Only rank 0 writes files and shows progress.

Output folder: `best.pth`, `last.pth` (the detector's own checkpoint layout, loadable with
`bench run --weights`), `best.json`, `last.json` (sidecars), `state.pt` (resume state), `log.csv`,
`config.json`.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from bench.errors import BenchError
from bench.provenance import git_commit, now_iso
from bench.store import atomic_write_bytes, atomic_write_json, default_results_root
from lfm import lfm_loss  # BCE-with-logits (+ aux_weight x the same on an auxiliary logit), any detector

STATE_FORMAT = 1
LOG_COLUMNS = ("epoch", "lr", "train_loss", "val_acc", "val_ap", "seconds")
DEMO_RECIPE = {"resize": None, "crop": 96}
"""The demo recipe (bundled demo weights): the 128x128 demo images at native size, 96x96 crops."""
CHECKPOINT_WRAPPERS = {"cnndetection": "model"}
"""Weights families whose official checkpoints wrap the state dict (CNNDetection: {'model': sd})."""
RESUMABLE_CHANGES = ("epochs", "workers", "device", "amp", "data_root", "output")
"""Config fields a resumed run may change: none of them alters what the remaining epochs compute
(a different device or amp setting changes the arithmetic, not the recipe)."""


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
    """The lr of epoch e (0-based) is lr * lr_decay ** (e // lr_step)."""
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
    """`bf16` or `off`. Default: bf16 on CUDA, off on CPU."""

    def __post_init__(self) -> None:
        problems = []
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

    def summary(self) -> dict:
        return {
            "output": str(self.output), "detector": self.detector, "epochs": self.epochs,
            "best_epoch": self.best_epoch, "best": self.best, "last": self.last,
            "best_path": str(self.best_path), "last_path": str(self.last_path),
            "resumed_from": self.resumed_from, "seconds": round(self.seconds, 3),
        }


def recipe_defaults(train_set: str) -> dict:
    """Recipe values implied by a train set: the demo recipe for `demo`, nothing otherwise."""
    return dict(DEMO_RECIPE) if train_set in ("demo", "demo-train") else {}


def lr_at(config: TrainConfig, epoch: int, base_lr: float) -> float:
    """Step decay: lr x lr_decay after every lr_step epochs (epoch is 0-based)."""
    return base_lr * config.lr_decay ** (epoch // config.lr_step)


def mix_seed(*parts) -> int:
    """A 63-bit seed from (seed, purpose, epoch, ...): stable across runs, machines and Python versions."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


# ---------------------------------------------------------------------------------------------- data


@dataclass
class TrainData:
    """One side (train or val) of the data: where it is and which images it holds."""

    spec: str
    name: str
    root: Path
    split: str
    resize: int | None
    """Val: the test-time protocol of the split (256 or native). Train: the recipe's resize."""
    items: list[tuple[Path, int]]
    generators: dict[str, dict[str, int]] = field(default_factory=dict)

    def describe(self) -> dict:
        n_fake = sum(label for _, label in self.items)
        return {
            "spec": self.spec, "name": self.name, "root": str(self.root), "split": self.split,
            "protocol": "native" if self.resize is None else f"resize{self.resize}",
            "n_images": len(self.items), "n_real": len(self.items) - n_fake, "n_fake": n_fake,
            "generators": self.generators, "fingerprint": self.fingerprint(),
        }

    def fingerprint(self) -> str:
        """The file list (relative paths and labels): a resumed run must see the same data."""
        digest = hashlib.sha256()
        for path, label in self.items:
            digest.update(f"{path.relative_to(self.root).as_posix()}\t{label}\n".encode())
        return digest.hexdigest()[:24]


def _registered(suite) -> bool:
    """A suite from the registry (possibly matched from a path), not an ad-hoc folder."""
    from bench.suites import SUITES

    known = SUITES.get(suite.name)
    return known is not None and dataclasses.replace(known, folder=suite.folder) == suite


def _test_suite_around(root: Path, data_root: Path):
    """The registered test suite a folder is or lies inside (by location or by folder name), or None."""
    from bench.suites import SUITES

    root = root.resolve()
    for suite in SUITES.values():
        if suite.split != "test":
            continue
        suite_root = (data_root / suite.folder).resolve()
        if root == suite_root or suite_root in root.parents:
            return suite
        if Path(suite.folder).name in (root.name, *(p.name for p in root.parents)):
            return suite
    return None


def _resolve_one(spec: str, data_root: Path, role: str):
    """`--train-set`/`--val-set` -> one ResolvedSuite; test suites, groups and lists are refused."""
    from bench.suites import GROUPS, known_names, resolve_suites

    if "," in spec or spec.lower() in GROUPS:
        raise BenchError(f"--{role}-set {spec}: give one suite or one folder, not a group or a list")
    if spec.lower() not in known_names() and not Path(spec).expanduser().exists() and (
            "/" in spec or os.sep in spec or spec.startswith((".", "~"))):
        raise BenchError(f"--{role}-set {spec}: no such folder")
    (resolved,) = resolve_suites(spec, data_root)
    suite = resolved.suite
    test_suite = suite if _registered(suite) and suite.split == "test" else None
    if test_suite is None and not _registered(suite):
        test_suite = _test_suite_around(resolved.root, data_root)
    if test_suite is not None:
        raise BenchError(
            f"--{role}-set {spec}: {resolved.root} is (part of) the test suite {test_suite.name!r}. Test suites "
            f"are for evaluation only: train on a `train` split (e.g. progan4) and validate on its `val` split "
            f"(e.g. progan4-val), or pass folders that are not test data."
        )
    if role == "train" and _registered(suite) and suite.split == "val":
        raise BenchError(f"--train-set {spec} is a validation split; train on its train split instead")
    if suite.demo and not resolved.exists:
        from bench.demo import ensure_demo_data

        ensure_demo_data(data_root)
        (resolved,) = resolve_suites(spec, data_root)
    if not resolved.exists:
        raise BenchError(
            f"--{role}-set {spec}: {suite.name} not found at {resolved.root} (published at {suite.source}). "
            "Download it there or pass --data-root; see README.md, section 'Getting the paper's data'."
        )
    return resolved


def _matching_val(train, data_root: Path):
    """The `val` split beside a training set (progan4 -> progan4-val, demo-train -> demo-val, a folder
    `X/train` -> `X/val`), as a ResolvedSuite; None when there is none."""
    from bench.suites import SUITES

    suite = train.suite
    if not _registered(suite):
        sibling = train.root.parent / "val"
        return _resolve_one(str(sibling), data_root, "val") if train.root.name == "train" and sibling.is_dir() else None
    names = (suite.name.replace("-train", "-val"), f"{suite.name}-val")
    val = next((SUITES[n] for n in names if n in SUITES and SUITES[n].split == "val"), None)
    if val is None:
        return None
    base = train.root  # the data root this train split sits in (it may have been given as a path)
    for _ in Path(SUITES[suite.name].folder).parts:
        base = base.parent
    if base.resolve() == data_root.resolve():
        return _resolve_one(val.name, data_root, "val")
    return _resolve_one(str(base / val.folder), data_root, "val")


def _collect(resolved, spec: str, resize: int | None, role: str) -> TrainData:
    from bench.suites import discover

    items: list[tuple[Path, int]] = []
    generators = {}
    for generator in discover(resolved.root, resolved.suite):
        items += [(p, 0) for p in generator.real] + [(p, 1) for p in generator.fake]
        generators[generator.name] = {"n_real": len(generator.real), "n_fake": len(generator.fake)}
    n_fake = sum(label for _, label in items)
    if n_fake == 0 or n_fake == len(items):
        raise BenchError(
            f"--{role}-set {spec}: {resolved.root} needs both real (0_real) and fake (1_fake) images; "
            f"found {len(items) - n_fake} real and {n_fake} fake"
        )
    split = resolved.suite.split if _registered(resolved.suite) else "folder"
    return TrainData(spec, resolved.suite.name, resolved.root, split, resize, items, generators)


def resolve_data(config: TrainConfig, data_root: Path) -> tuple[TrainData, TrainData]:
    """The training and validation images of a recipe."""
    train_spec = "demo-train" if config.train_set == "demo" else config.train_set
    train = _resolve_one(train_spec, data_root, "train")
    if config.val_set is not None:
        val = _resolve_one("demo-val" if config.val_set == "demo" else config.val_set, data_root, "val")
    else:
        val = _matching_val(train, data_root)
        if val is None:
            raise BenchError(
                f"--train-set {config.train_set} has no matching val split; give one with --val-set "
                "(a folder of 0_real/1_fake images that is not a test suite)"
            )
    if val.root.resolve() == train.root.resolve():
        raise BenchError("the validation set is the training set; give a separate --val-set")
    # a registered val split keeps its test-time protocol; a plain folder is validated like training images
    val_resize = val.suite.resize if _registered(val.suite) else config.resize
    return (
        _collect(train, config.train_set, config.resize, "train"),
        _collect(val, config.val_set or (val.suite.name if _registered(val.suite) else str(val.root)), val_resize, "val"),
    )


class TrainImages(torch.utils.data.Dataset):
    """(epoch, index) -> (uint8 [3, crop, crop], label). The crop and flip of an image depend only on
    (seed, epoch, index), so they are the same whatever the worker count or the process layout."""

    def __init__(self, items, resize: int | None, crop: int | None, flip: bool, seed: int, even_crop: bool):
        self.items = items
        self.resize = resize
        self.crop = crop
        self.flip = flip
        self.seed = seed
        self.even_crop = even_crop

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, float]:
        from bench.data import UnusableImage, decode_image

        epoch, index = key
        path, label = self.items[index]
        try:
            # the official training code loads truncated files (ImageFile.LOAD_TRUNCATED_IMAGES = True)
            pixels = decode_image(path, self.resize, even_crop=self.even_crop, load_truncated=True).pixels
        except UnusableImage as error:
            raise BenchError(f"training image {path} cannot be used ({error.reason}); remove it or fix it") from error
        generator = torch.Generator().manual_seed(mix_seed(self.seed, "augment", epoch, index))
        if self.crop is not None:
            height, width = pixels.shape[1:]
            if height < self.crop or width < self.crop:
                raise BenchError(
                    f"training image {path} is {width}x{height}, smaller than the {self.crop}x{self.crop} crop; "
                    "use a smaller --crop or --resize (the demo recipe is --resize none --crop 96)"
                )
            top = int(torch.randint(0, height - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - self.crop + 1, (1,), generator=generator))
            pixels = pixels[:, top:top + self.crop, left:left + self.crop]
        if self.flip and float(torch.rand(1, generator=generator)) < 0.5:
            pixels = pixels.flip(-1)
        return pixels.contiguous(), float(label)


class EpochBatches(torch.utils.data.Sampler):
    """This rank's share of every global batch of an epoch, as lists of (epoch, index) keys.

    The order is a permutation seeded with (seed, epoch); global batch b is order[b*B:(b+1)*B] and rank r
    takes its items r, r+W, r+2W, ... The last, short global batch is kept (as the official loader's
    drop_last=False) when every rank gets at least one image of it. `set_epoch` moves to another epoch;
    the keys carry the epoch, so persistent loader workers never augment with a stale one."""

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 max_steps: int | None = None, epoch: int = 0) -> None:
        super().__init__()
        self.n_items = n_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world = world
        self.max_steps = max_steps
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        generator = torch.Generator().manual_seed(mix_seed(self.seed, "order", epoch))
        order = torch.randperm(self.n_items, generator=generator).tolist()
        batches = [order[i:i + self.batch_size] for i in range(0, self.n_items, self.batch_size)]
        if batches and len(batches[-1]) < self.world:
            batches.pop()
        self.global_batches = batches[:self.max_steps] if self.max_steps is not None else batches

    def __len__(self) -> int:
        return len(self.global_batches)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.global_batches:
            yield [(self.epoch, index) for index in batch[self.rank::self.world]]

    def global_size(self, step: int) -> int:
        return len(self.global_batches[step])


# ---------------------------------------------------------------------------------------- processes


@dataclass
class Processes:
    """Where this process stands under torchrun (rank 0 of 1 without it)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def start_processes(device_spec: str) -> tuple[Processes, torch.device]:
    from bench.inference import pick_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes(), pick_device(device_spec)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_spec)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(rank, world, local_rank, started), device


class _SumOverProcesses(torch.autograd.Function):
    """all_reduce(SUM) that autograd sees through: every process's loss depends on every process's
    sums, so the gradient of the sums is itself summed over processes."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics span every process's share of the global batch.

    For CPU/gloo, where torch's SyncBatchNorm refuses to run ("expected input tensor to be on GPU"). The
    per-channel sums are all-reduced in forward and their gradients in backward: the same maths as
    SyncBatchNorm. Same state dict keys as BatchNorm, so checkpoints do not change."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        totals = _SumOverProcesses.apply(torch.cat([x.sum(dims), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = x - mean.view(shape)
        var = _SumOverProcesses.apply((centred * centred).sum(dims)) / n  # two passes: as exact as BatchNorm's
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (n / (n - 1)) if n > 1 else var.detach()
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return y


def convert_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm -> global-batch BatchNorm for distributed training (state dict keys unchanged)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    plain = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) in plain:
                replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                              child.track_running_stats)
                replacement.load_state_dict(child.state_dict())
                replacement.train(child.training)
                setattr(parent, name, replacement)
    return model


# -------------------------------------------------------------------------------------- checkpoints


def _torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def rng_states() -> dict:
    numpy_state = np.random.get_state(legacy=False)
    states = {
        "python": random.getstate(),
        "numpy": {"key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
                  "pos": numpy_state["state"]["pos"], "has_gauss": numpy_state["has_gauss"],
                  "gauss": numpy_state["gauss"]},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    numpy_state = states["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"], "gauss": numpy_state["gauss"],
    })
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Re-seed the global RNGs that the model's own randomness draws from (dropout, Random-K Sampling)."""
    value = mix_seed(seed, "forward", epoch, rank)
    torch.manual_seed(value)
    random.seed(value)
    np.random.seed(value % 2**32)


def write_checkpoint(folder: Path, which: str, model: nn.Module, detector, sidecar: dict) -> Path:
    """`<which>.pth` in the detector's own key layout plus `<which>.json`; both written atomically."""
    from detectors import export_state_dict

    state_dict = export_state_dict(model, detector)
    wrapper = CHECKPOINT_WRAPPERS.get(detector.weights_family)
    payload = _torch_bytes({wrapper: state_dict} if wrapper else state_dict)
    path = folder / f"{which}.pth"
    atomic_write_bytes(path, payload)
    atomic_write_json(folder / f"{which}.json", {
        **sidecar, "checkpoint": path.name, "sha256": hashlib.sha256(payload).hexdigest(),
    })
    return path


def write_log(folder: Path, history: list[dict]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(folder / "log.csv", text.getvalue().encode())


def load_config(folder: str | Path) -> TrainConfig:
    """The recipe of an earlier run (its `config.json`)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise BenchError(f"{folder} holds no training run to resume (no config.json); check --output")
    saved = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in saved.items() if k in known})


def load_state(folder: Path, device: torch.device) -> dict:
    path = folder / "state.pt"
    if not path.is_file():
        raise BenchError(
            f"{folder} has no state.pt: the run stopped before its first epoch ended. Start it again "
            "without --resume (and a fresh --output)."
        )
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise BenchError(f"cannot read {path} ({type(error).__name__}: {error})") from error
    if state.get("format") != STATE_FORMAT:
        raise BenchError(f"{path} is in an unknown format ({state.get('format')!r}); it cannot be resumed")
    return state


def check_resumable(saved: TrainConfig, config: TrainConfig) -> None:
    changed = [
        f"{f.name} ({getattr(saved, f.name)!r} -> {getattr(config, f.name)!r})"
        for f in dataclasses.fields(TrainConfig)
        if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(config, f.name)
    ]
    if changed:
        raise BenchError(
            "--resume continues a run with its own recipe; these differ from it: " + ", ".join(changed)
            + ". Only " + ", ".join(RESUMABLE_CHANGES) + " may change; start a new run for another recipe."
        )


# -------------------------------------------------------------------------------------- validation


def score_validation(run: Run) -> dict:
    """ACC/AP (and the other bench metrics) of the model in eval mode on the val images under the val
    split's test-time protocol, each process scoring its share; bad files are skipped and counted, as
    `bench run` does."""
    from bench.data import ImageDataset, collate_by_size
    from bench.metrics import compute_metrics

    procs, device, val = run.procs, run.device, run.val
    indices = list(range(procs.rank, len(val.items), procs.world))
    dataset = ImageDataset([val.items[i] for i in indices], resize=val.resize,
                           even_crop=run.detector.preprocessing.even_size)
    loader = torch.utils.data.DataLoader(dataset, batch_size=run.config.batch_size, num_workers=run.config.workers,
                                         collate_fn=collate_by_size, pin_memory=device.type == "cuda")
    scored: list[tuple[int, float]] = []
    skipped = 0
    run.model.eval()
    bar = tqdm(total=len(indices), desc="validation", unit="img", leave=False, file=sys.stderr,
               disable=not (run.progress and procs.is_main) or None)
    with torch.inference_mode(), autocast(device, run.config.amp):
        for batch in loader:
            skipped += len(batch.failed)
            for local, pixels in batch.groups:
                x = (pixels.to(device, non_blocking=True).float() / 255 - run.mean) / run.std
                logits = run.model(x).float().cpu().tolist()
                scored += [(indices[i], logit) for i, logit in zip(local, logits, strict=True)]
            bar.update(sum(len(g[0]) for g in batch.groups) + len(batch.failed))
    bar.close()
    if procs.distributed:
        gathered: list = [None] * procs.world
        dist.all_gather_object(gathered, (scored, skipped))
        scored = [row for part, _ in gathered for row in part]
        skipped = sum(n for _, n in gathered)
    if not scored:
        raise BenchError(f"none of the {len(val.items)} validation images under {val.root} could be decoded")
    scored.sort()
    labels = [val.items[i][1] for i, _ in scored]
    probs = torch.sigmoid(torch.tensor([logit for _, logit in scored], dtype=torch.float64)).tolist()
    metrics = compute_metrics(labels, probs)
    keep = ("acc", "ap", "r_acc", "f_acc", "auc", "n_real", "n_fake")
    return {**{k: metrics[k] for k in keep}, "n_skipped": skipped}


def autocast(device: torch.device, amp: str):
    if device.type == "cuda" and amp == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def better(metrics: dict, best: dict | None) -> bool:
    """Val ACC first, AP to break ties; an undefined AP never wins a tie."""
    if best is None:
        return True

    def key(m):
        ap = m.get("ap")
        return (m["acc"], ap if ap is not None and math.isfinite(ap) else -math.inf)

    return key(metrics) > key(best)


# ----------------------------------------------------------------------------------------- training


def resolve_config(config: TrainConfig, detector, device: torch.device, procs: Processes) -> TrainConfig:
    """Fill the `None` defaults with the detector's and the machine's values (what gets recorded)."""
    from bench.suites import default_data_root

    if config.batch_size % procs.world:
        raise BenchError(f"--batch-size {config.batch_size} (the global batch) does not split over "
                         f"{procs.world} processes; use a multiple of {procs.world}")
    if detector.preprocessing.even_size and config.crop is not None and config.crop % 2:
        raise BenchError(f"detector {detector.name} needs even image sizes; use an even --crop")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", procs.world))
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
        amp=config.amp or ("bf16" if device.type == "cuda" else "off"),
    )


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]  # frozen NPR kernels stay out
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.0, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2),
                            weight_decay=config.weight_decay)


@dataclass
class Run:
    """What the epoch loop needs, set up once."""

    config: TrainConfig
    detector: object
    procs: Processes
    device: torch.device
    model: nn.Module
    """The plain model (what checkpoints export)."""
    step_model: nn.Module
    """The model the training step calls (DistributedDataParallel under torchrun)."""
    optimizer: torch.optim.Optimizer
    train: TrainData
    val: TrainData
    sampler: EpochBatches
    loader: torch.utils.data.DataLoader
    mean: torch.Tensor
    std: torch.Tensor
    folder: Path
    progress: bool
    epoch: int = 0
    step: int = 0
    best: dict | None = None
    best_epoch: int | None = None
    last: dict | None = None
    history: list[dict] = field(default_factory=list)

    def sidecar(self, epoch: int, metrics: dict) -> dict:
        import bench

        return {
            "detector": self.detector.name, "display_name": self.detector.display_name,
            "weights_family": self.detector.weights_family, "epoch": epoch, "step": self.step,
            "val_metrics": metrics, "recipe": dataclasses.asdict(self.config),
            "data": {"train": self.train.describe(), "val": self.val.describe()},
            "world_size": self.procs.world, "device": str(self.device),
            "package_version": bench.__version__, "git_commit": git_commit(), "torch_version": torch.__version__,
            "written_at": now_iso(),
        }


def setup(config: TrainConfig, procs: Processes, device: torch.device, resume: bool,
          progress: bool) -> tuple[Run, dict | None]:
    from detectors import get_detector

    detector = get_detector(config.detector)
    config = resolve_config(config, detector, device, procs)
    folder = Path(config.output)
    state = None
    if resume:
        check_resumable(load_config(folder), config)
        state = load_state(folder, torch.device("cpu"))
    elif (folder / "state.pt").exists() or (folder / "config.json").exists():
        raise BenchError(f"{folder} already holds a training run; add --resume to continue it, or pick another --output")
    if procs.distributed:
        dist.barrier()  # every rank has looked at the folder before rank 0 writes into it
    train_data, val_data = resolve_data(config, Path(config.data_root))
    if state is not None and state["train_fingerprint"] != train_data.fingerprint():
        raise BenchError(
            f"the training images under {train_data.root} are not the ones the run in {folder} started with "
            "(files added, removed or renamed); it cannot be resumed exactly. Start a new run."
        )
    torch.manual_seed(mix_seed(config.seed, "init"))  # the same initial weights on every rank
    model = detector.build_model()
    if state is not None:
        model.load_state_dict(state["model"])
    if procs.distributed and config.sync_bn:
        model = convert_batchnorm(model, device)
    model = model.to(device)
    step_model = model
    if procs.distributed:
        ids = [device.index] if device.type == "cuda" else None
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    optimizer = make_optimizer(config, model)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    mean = torch.tensor(detector.preprocessing.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(detector.preprocessing.std, device=device).view(1, 3, 1, 1)
    dataset = TrainImages(train_data.items, config.resize, config.crop, config.flip, config.seed,
                          detector.preprocessing.even_size)
    sampler = EpochBatches(len(dataset), config.batch_size, config.seed, procs.rank, procs.world,
                           config.max_steps_per_epoch)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=config.workers,
                                         pin_memory=device.type == "cuda", persistent_workers=config.workers > 0)
    run = Run(config, detector, procs, device, model, step_model, optimizer, train_data, val_data, sampler, loader,
              mean, std, folder, progress)
    if state is not None:
        run.epoch, run.step, run.history = state["epoch"], state["step"], list(state["history"])
        run.best, run.best_epoch, run.last = state["best"], state["best_epoch"], state["last"]
        restore_rng_states(state["rng"])
    elif procs.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "config.json", dataclasses.asdict(config))
    return run, state


def train_epoch(run: Run) -> float:
    """One epoch of training; returns the mean training loss over the epoch's images."""
    config, procs = run.config, run.procs
    seed_epoch(config.seed, run.epoch, procs.rank)
    lr = lr_at(config, run.epoch, config.lr)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    sampler = run.sampler
    sampler.set_epoch(run.epoch)
    run.model.train()
    loss_sum = torch.zeros(2, dtype=torch.float64, device=run.device)  # (sum of losses x images, images)
    bar = tqdm(total=len(sampler), desc=f"epoch {run.epoch + 1}/{config.epochs}", unit="step", leave=False,
               file=sys.stderr, disable=not (run.progress and procs.is_main) or None)
    for step_in_epoch, (pixels, labels) in enumerate(run.loader):
        x = (pixels.to(run.device, non_blocking=True).float() / 255 - run.mean) / run.std
        target = labels.to(run.device, dtype=torch.float32)
        with autocast(run.device, config.amp):
            output = run.step_model(x)
            loss = lfm_loss(output, target, config.aux_loss_weight)
        # DDP averages gradients over ranks; weighting each rank's mean loss by its share of the global
        # batch makes that average the global batch's mean loss, also for an unevenly split last batch
        share = len(target) * procs.world / sampler.global_size(step_in_epoch)
        run.optimizer.zero_grad(set_to_none=True)
        (loss * share).backward()
        run.optimizer.step()
        run.step += 1
        loss_sum[0] += loss.detach().double() * len(target)
        loss_sum[1] += len(target)
        bar.update(1)
        if step_in_epoch % 10 == 0:  # reading the loss waits for the device: not every step
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
    bar.close()
    if procs.distributed:
        dist.all_reduce(loss_sum)
    return float(loss_sum[0] / loss_sum[1]) if loss_sum[1] > 0 else math.nan


def finish_epoch(run: Run, train_loss: float, metrics: dict, seconds: float) -> dict:
    """Record the epoch: log row, checkpoints, then the resume state (the commit point), rank 0 only."""
    run.epoch += 1
    record = {"epoch": run.epoch, "lr": lr_at(run.config, run.epoch - 1, run.config.lr), "train_loss": train_loss,
              "val_acc": metrics["acc"], "val_ap": metrics["ap"], "seconds": round(seconds, 3)}
    run.history.append(record)
    run.last = metrics
    improved = better(metrics, run.best)
    if improved:
        run.best, run.best_epoch = metrics, run.epoch
    if run.procs.is_main:
        write_checkpoint(run.folder, "last", run.model, run.detector, run.sidecar(run.epoch, metrics))
        if improved:
            write_checkpoint(run.folder, "best", run.model, run.detector, run.sidecar(run.epoch, metrics))
        write_log(run.folder, run.history)
        state = {
            "format": STATE_FORMAT, "epoch": run.epoch, "step": run.step,
            "model": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
            "optimizer": run.optimizer.state_dict(), "rng": rng_states(), "sampler_epoch": run.epoch,
            "best": run.best, "best_epoch": run.best_epoch, "last": run.last, "history": run.history,
            "train_fingerprint": run.train.fingerprint(), "world_size": run.procs.world,
        }
        atomic_write_bytes(run.folder / "state.pt", _torch_bytes(state))
        flag = " (best)" if improved else ""
        print(f"epoch {run.epoch}/{run.config.epochs}  lr {record['lr']:.3g}  loss {train_loss:.4f}  "
              f"val acc {metrics['acc']:.4f} ap {metrics['ap']:.4f}{flag}  {seconds:.1f}s", file=sys.stderr)
    return record


@contextmanager
def _deterministic(enabled: bool, device: torch.device):
    """Deterministic kernels for the duration of training (warn-only: some CUDA kernels have none);
    the caller's settings come back afterwards."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark)
    if enabled:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: the fastest kernels are worth finding
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True,
          on_epoch_end: Callable[[dict], None] | None = None) -> TrainResult:
    """Train `config.detector` with the recipe in `config`; with `resume`, continue the run in
    `config.output` from its last finished epoch. `on_epoch_end(record)` runs after each epoch's files
    are written (tests use it to interrupt a run)."""
    started = time.perf_counter()
    if resume and config.output is None:
        raise BenchError("--resume needs --output: the folder of the run to continue")
    procs, device = start_processes(config.device)
    try:
        run, state = setup(config, procs, device, resume, progress)
        with _deterministic(run.config.deterministic, run.device):
            resumed_from = run.epoch if state is not None else None
            while run.epoch < run.config.epochs:
                epoch_started = time.perf_counter()
                train_loss = train_epoch(run)
                metrics = score_validation(run)
                record = finish_epoch(run, train_loss, metrics, time.perf_counter() - epoch_started)
                if on_epoch_end is not None:
                    on_epoch_end(record)
    finally:
        if procs.started_group:
            dist.destroy_process_group()
    return TrainResult(
        output=run.folder, detector=run.detector.name, epochs=run.epoch, best_epoch=run.best_epoch,
        best=run.best or {}, last=run.last or {}, best_path=run.folder / "best.pth", last_path=run.folder / "last.pth",
        history=run.history, resumed_from=resumed_from, seconds=time.perf_counter() - started,
        is_main=run.procs.is_main,
    )
