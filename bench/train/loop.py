"""The training loop: set up a `Run`, train and validate epoch after epoch, record each epoch; `train()`."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from bench.engine.provenance import git_commit, now_iso
from bench.engine.store import atomic_write_bytes, atomic_write_json, require_writable_folder
from bench.errors import BenchError
from bench.train.batches import EpochBatches, TrainData, TrainImages, resolve_data
from bench.train.parallel import Processes, convert_batchnorm, start_processes
from bench.train.recipe import TrainConfig, TrainResult, lr_at, mix_seed, resolve_config, seed_epoch
from bench.train.state import (
    STATE_FORMAT,
    check_resumable,
    load_config,
    load_state,
    restore_rng_states,
    rng_states,
    torch_bytes,
    write_checkpoint,
    write_log,
)
from lfm import lfm_loss  # BCE-with-logits (+ aux_weight x the same on an auxiliary logit), any detector

log = logging.getLogger(__name__)

# -------------------------------------------------------------------------------------- validation


def score_validation(run: Run) -> dict:
    """ACC/AP (and the other bench metrics) of the model in eval mode on the val images under the val
    split's test-time protocol, each process scoring its share through the one scoring loop
    (bench.engine.scoring), prepared as `config.val_transform` says (the official validation loader by
    default); unusable files are skipped and counted. Metrics as the official validate.py computes them
    (float32 sigmoid)."""
    from bench.engine.metrics import metrics_from_logits

    val = run.val
    spec = validation_spec(run.config, val, run.detector.preprocessing)
    scored, skipped = score_items(run, val.items, spec, val.root, "validation")
    labels = [val.items[i][1] for i, _ in scored]
    metrics = metrics_from_logits(labels, [logit for _, logit in scored])
    keep = ("acc", "ap", "r_acc", "f_acc", "auc", "n_real", "n_fake")
    return {**{k: metrics[k] for k in keep}, "n_skipped": skipped}


def score_items(run: Run, items: list, spec, root: Path, desc: str) -> tuple[list[tuple[int, float]], int]:
    """(index, logit) of each decodable item under the DecodeSpec `spec`, sorted, and the number skipped:
    the model in eval mode through the one scoring loop (bench.engine.scoring), each process scoring its share
    (validation, and the active-learning query of the training pool)."""
    from bench.engine.inference import prepare_scorer
    from bench.engine.scoring import score_images

    procs, device = run.procs, run.device
    indices = list(range(procs.rank, len(items), procs.world))
    run.model.eval()
    # the plain model (no BatchNorm folding), so scoring sees exactly what training built
    scorer = prepare_scorer(run.model, run.detector.preprocessing, device, optimize=False)
    scored: list[tuple[int, float]] = []
    skipped = 0
    bar = tqdm(total=len(indices), desc=desc, unit="img", leave=False, file=sys.stderr,
               disable=not (run.progress and procs.is_main) or None)
    batches = score_images([items[i] for i in indices], {"model": scorer}, spec, device=device,
                           batch_size=run.config.batch_size, workers=run.config.workers, amp=run.config.amp,
                           progress=bar.update)
    for rows in batches:
        for row in rows:
            logit = row.values["model"]
            if logit is None:
                skipped += 1
            else:
                scored.append((indices[row.index], float(logit)))
    bar.close()
    if procs.distributed:
        gathered: list = [None] * procs.world
        dist.all_gather_object(gathered, (scored, skipped))
        scored = [row for part, _ in gathered for row in part]
        skipped = sum(n for _, n in gathered)
    if not scored:
        raise BenchError(f"none of the {len(items)} {desc} images under {root} could be decoded")
    scored.sort()
    return scored, skipped

def validation_spec(config: TrainConfig, val: TrainData, preprocessing):
    """How validation images are decoded under `config.val_transform`."""
    from bench.engine.decode import DecodeSpec

    if config.val_transform == "center-crop":
        # NPR's data/datasets.py with isTrain False: Resize((loadSize, loadSize)) -> CenterCrop(cropSize),
        # with ImageFile.LOAD_TRUNCATED_IMAGES set for the whole process
        return DecodeSpec(resize=config.resize, interpolation=preprocessing.interpolation,
                          even_crop=preprocessing.even_crop, center_crop=config.crop, load_truncated=True)
    return DecodeSpec.for_detector(val.resize, preprocessing)


def better(metrics: dict, best: dict | None) -> bool:
    """Val ACC first, AP to break ties; an undefined AP never wins a tie."""
    if best is None:
        return True

    def key(m):
        ap = m.get("ap")
        return (m["acc"], ap if ap is not None and math.isfinite(ap) else -math.inf)

    return key(metrics) > key(best)


# ----------------------------------------------------------------------------------------- training


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
    folder: Path
    progress: bool
    epoch: int = 0
    step: int = 0
    best: dict | None = None
    best_epoch: int | None = None
    last: dict | None = None
    history: list[dict] = field(default_factory=list)
    init_source: str | None = None
    """The file of the initial weights (--init imagenet), recorded in every sidecar."""
    masks: dict[int, Path] | None = None
    """Item index -> mask file of the training images granted a mask; None: the batches carry no masks."""
    mask_record: dict | None = None
    """What `masks.json` holds, once the masks are chosen (None: not yet, or no masks)."""

    def sidecar(self, epoch: int, metrics: dict) -> dict:
        import bench

        return {
            "detector": self.detector.name, "display_name": self.detector.display_name,
            "weights_family": self.detector.weights_family, "epoch": epoch, "step": self.step,
            "val_metrics": metrics, "recipe": dataclasses.asdict(self.config),
            "data": {"train": self.train.describe(), "val": self.val.describe()},
            "init": {"kind": self.config.init, "file": self.init_source},
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
    # a file in the way or a read-only folder: exit 2 before the model is built, not a traceback at the first
    # write (after the data's checks, so that a refused data set leaves no folder behind)
    require_writable_folder(folder, "the training run")
    from detectors.loading import load_backbone, locate_backbone

    backbone = locate_backbone(detector)  # a frozen backbone's file (UnivFD's CLIP) must be here, or exit 2
    torch.manual_seed(mix_seed(config.seed, "init"))  # the same initial weights on every rank
    model = detector.build_model()
    init_source = None
    if state is not None:
        model.load_state_dict(state["model"])
    else:
        load_backbone(detector, model, backbone)
        if config.init == "imagenet":
            init_source = str(detector.imagenet_init(model))
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
    granted, mask_record = _initial_masks(config, detector, train_data, state)
    sampler = EpochBatches(len(train_data.items), config.batch_size, config.seed, procs.rank, procs.world,
                           config.max_steps_per_epoch)
    run = Run(config, detector, procs, device, model, step_model, optimizer, train_data, val_data, sampler, None,
              folder, progress, masks=granted, mask_record=mask_record)
    run.loader = make_loader(run)
    run.init_source = init_source if state is None else state.get("init_source")
    if state is not None:
        run.epoch, run.step, run.history = state["epoch"], state["step"], list(state["history"])
        run.best, run.best_epoch, run.last = state["best"], state["best_epoch"], state["last"]
        restore_rng_states(state["rng"])
    elif procs.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / "config.json", dataclasses.asdict(config))
        if mask_record is not None:
            atomic_write_json(folder / "masks.json", mask_record)
    return run, state


def make_loader(run: Run) -> torch.utils.data.DataLoader:
    """The training loader over `run.sampler`; rebuilt when the granted masks change (persistent workers
    hold a copy of the dataset)."""
    config = run.config
    dataset = TrainImages(run.train.items, config.resize, config.crop, config.flip, config.seed,
                          run.detector.preprocessing, masks=run.masks)
    # A DataLoader draws its workers' base seed from the global torch RNG whenever it starts an iterator,
    # unless given a generator. With persistent workers that happens in the first epoch only, so a resumed
    # run (which starts its iterator in a later epoch) would shift the global RNG that LFM's dropout and
    # Random-K Sampling draw from, and end with other weights. A private generator keeps the draw off it.
    return torch.utils.data.DataLoader(dataset, batch_sampler=run.sampler, num_workers=config.workers,
                                       pin_memory=run.device.type == "cuda", persistent_workers=config.workers > 0,
                                       generator=torch.Generator().manual_seed(mix_seed(config.seed, "loader")))


def _initial_masks(config: TrainConfig, detector, train_data: TrainData, state: dict | None):
    """(granted masks, masks.json record) at the start of a run (or as a resumed run had them)."""
    from bench.train import masks

    if config.mask_selection == "none":
        return None, None
    if not detector.uses_masks:
        raise BenchError(f"--mask-selection {config.mask_selection}: detector {detector.name} has no mask-regularised "
                         "loss (see `bench list detectors`; lae has one)")
    pool = train_data.mask_files
    if not pool:
        raise BenchError(f"--mask-selection {config.mask_selection}: the training set {train_data.root} has no "
                         "forgery masks (1_fake_masks/<name>.png beside 1_fake; see `bench data check`)")
    if state is not None and state.get("masks") is not None:
        return {i: pool[i] for i in state["masks"]}, state.get("mask_record")
    n_images = len(train_data.items)
    count = masks.budget_count(config.mask_budget, n_images, len(pool))
    if config.mask_selection == "active":
        return {}, None  # requested after mask_query_epoch epochs (`query_masks`)
    chosen = sorted(pool) if config.mask_selection == "all" else masks.select_random(list(pool), count, config.seed)
    record = masks.record(config.mask_selection, config.mask_budget, n_images, pool, chosen, train_data.root,
                          train_data.items)
    return {i: pool[i] for i in chosen}, record


def query_masks(run: Run) -> None:
    """The active-learning step: score the pool's unmasked fakes with the current model, request the
    masks of the budgeted most informative ones, record them, and rebuild the loader."""
    from bench.engine.decode import DecodeSpec
    from bench.engine.metrics import probability
    from bench.train import masks

    pool = run.train.mask_files
    candidates = [i for i in sorted(pool) if i not in run.masks]
    n_images = len(run.train.items)
    count = masks.budget_count(run.config.mask_budget, n_images, len(pool))
    # the training images' decode (the recipe's resize), without the random crop and flip
    spec = DecodeSpec.for_detector(run.config.resize, run.detector.preprocessing, load_truncated=True)
    scored, _ = score_items(run, [run.train.items[i] for i in candidates], spec, run.train.root, "mask query")
    scores = {candidates[local]: probability(logit) for local, logit in scored}
    chosen = masks.select_active(scores, count)
    run.masks = {i: pool[i] for i in chosen}
    run.mask_record = masks.record("active", run.config.mask_budget, n_images, pool, chosen, run.train.root,
                                   run.train.items, epoch=run.epoch, scores=scores)
    if run.procs.is_main:
        atomic_write_json(run.folder / "masks.json", run.mask_record)
        print(f"requested {len(chosen)} masks of {len(candidates)} candidates after epoch {run.epoch} "
              f"({len(chosen) / n_images:.2%} of the training images): {run.folder / 'masks.json'}", file=sys.stderr)
    run.loader = make_loader(run)


def train_epoch(run: Run) -> float:
    """One epoch of training; returns the mean training loss over the epoch's images."""
    from bench.engine.inference import autocast_context

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
    for step_in_epoch, batch in enumerate(run.loader):
        pixels, labels = batch[0], batch[1]
        x = run.detector.preprocessing.normalize(pixels.to(run.device, non_blocking=True))
        target = labels.to(run.device, dtype=torch.float32)
        with autocast_context(run.device, config.amp):
            output = run.step_model(x)
            if run.detector.train_loss is None:
                loss = lfm_loss(output, target, config.aux_loss_weight)
            else:  # the detector's own loss; masks only in runs that carry them (--mask-selection)
                masks, has_mask = (batch[2].to(run.device), batch[3].to(run.device)) if len(batch) > 2 else (None, None)
                loss = run.detector.train_loss(output, target, masks=masks, has_mask=has_mask)
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
            "init_source": run.init_source,
            "masks": sorted(run.masks) if run.masks is not None else None, "mask_record": run.mask_record,
        }
        atomic_write_bytes(run.folder / "state.pt", torch_bytes(state))
        flag = " (best)" if improved else ""
        left = run.config.epochs - run.epoch  # the epochs' bars show each epoch's ETA; this line the run's
        log.info("epoch %d/%d  lr %.3g  loss %.4f  val acc %.4f ap %.4f%s  %.1fs%s", run.epoch, run.config.epochs,
                 record["lr"], train_loss, metrics["acc"], metrics["ap"], flag, seconds,
                 f"  (about {left * seconds:.0f}s left)" if left else "")
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
                if (run.config.mask_selection == "active" and run.mask_record is None
                        and run.epoch >= run.config.mask_query_epoch):
                    query_masks(run)
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
        is_main=run.procs.is_main, checkpoint=run.config.checkpoint,
    )
