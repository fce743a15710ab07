"""Training a registered detector with the paper's recipe (NPR / LFM training code), reproducibly.

Recipe (every value is a `TrainConfig` field, recorded in `config.json` and in each checkpoint's sidecar):
Adam (beta1 0.9), global batch 32, Resize((256, 256)) -> RandomCrop(224) -> RandomHorizontalFlip ->
Normalize, BCE-with-logits (+ the detector's auxiliary loss, LFM's Random-K Sampling), lr x0.9 every 10
epochs (taking effect after epochs 11, 21, ... as NPR's train.py), 50 epochs, float32; lr = the
detector's `train_lr` (1e-4 LFM, 2e-4 NPR). Validation after every epoch on a `val` split (never a test
suite) through the official validation loader (Resize((256, 256)) -> CenterCrop(224)); the checkpoint to
evaluate is the last epoch's, as the official code saves it (`--checkpoint best` picks the best val ACC,
then AP; both are written).

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

from bench.train.batches import EpochBatches, TrainData, TrainImages, resolve_data
from bench.train.loop import (
    Run,
    better,
    finish_epoch,
    make_optimizer,
    score_validation,
    setup,
    train,
    train_epoch,
)
from bench.train.parallel import GlobalBatchNorm, Processes, convert_batchnorm, start_processes
from bench.train.recipe import (
    CHECKPOINT_RULES,
    DEMO_RECIPE,
    LEGACY_RECIPE,
    LR_SCHEDULES,
    RECIPE_FIELDS,
    VAL_TRANSFORMS,
    TrainConfig,
    TrainResult,
    lr_at,
    mix_seed,
    recipe_defaults,
    resolve_config,
    seed_epoch,
)
from bench.train.state import (
    LOG_COLUMNS,
    RESUMABLE_CHANGES,
    STATE_FORMAT,
    check_resumable,
    load_config,
    load_state,
    restore_rng_states,
    rng_states,
    train_config,
    write_checkpoint,
    write_log,
)

__all__ = [
    "CHECKPOINT_RULES",
    "RECIPE_FIELDS",
    "DEMO_RECIPE",
    "LEGACY_RECIPE",
    "LOG_COLUMNS",
    "LR_SCHEDULES",
    "RESUMABLE_CHANGES",
    "STATE_FORMAT",
    "EpochBatches",
    "GlobalBatchNorm",
    "Processes",
    "Run",
    "TrainConfig",
    "TrainData",
    "TrainImages",
    "TrainResult",
    "VAL_TRANSFORMS",
    "better",
    "check_resumable",
    "convert_batchnorm",
    "finish_epoch",
    "load_config",
    "load_state",
    "lr_at",
    "make_optimizer",
    "mix_seed",
    "recipe_defaults",
    "resolve_config",
    "resolve_data",
    "restore_rng_states",
    "rng_states",
    "score_validation",
    "seed_epoch",
    "setup",
    "start_processes",
    "train",
    "train_config",
    "train_epoch",
    "write_checkpoint",
    "write_log",
]
