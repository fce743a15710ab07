"""Train a detector with the paper's recipe; checkpoints load directly with `bench run --weights`.

Defaults (the NPR/LFM training code): Adam (beta1 0.9), global batch 32, Resize((256, 256)) ->
RandomCrop(224) -> RandomHorizontalFlip -> Normalize, BCE-with-logits (+ the Random-K Sampling loss for
LFM), lr x0.9 every 10 epochs taking effect after epochs 11, 21, ..., 50 epochs, lr 1e-4 for LFM and 2e-4
for NPR, float32, validation through Resize((256, 256)) -> CenterCrop(224), and the last epoch as the
checkpoint to evaluate. Every value can be changed and is recorded in the output folder (config.json, and
the sidecar of each checkpoint).

`--train-set` takes `progan4` (ForenSynths train: car, cat, chair, horse), `demo` (the synthetic demo
set: implies `--resize none --crop 96` and validation on demo-val), another train split, or a folder of
`0_real`/`1_fake` images. Validation runs after every epoch on `--val-set` (default: the matching `val`
split; a folder named `train` validates on its sibling `val`); a test suite is refused for both.

The output folder (default results/train/<detector>-<train set>-<time>) gets best.pth and last.pth (the
detector's own checkpoint layout) with best.json/last.json beside them, log.csv (one row per epoch),
config.json and state.pt. `--resume --output DIR` continues an interrupted run exactly; `--epochs N` may
extend it. Under torchrun (`torchrun --nproc_per_node N -m bench train ...`) the processes share the
global batch.
"""

from __future__ import annotations

import argparse
import json


def parse_size(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a size in pixels or 'none', got {text!r}") from error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # recipe options are absent from the namespace unless given, so that defaults stay the library's
    # (and the demo recipe's) and --resume can tell a changed value from an unspoken one
    unset = argparse.SUPPRESS
    add = parser.add_argument
    add("--detector", default=unset, help="NAME (see `bench list detectors`); required unless --resume")
    add("--train-set", default=unset, help="progan4 | demo | NAME | PATH; required unless --resume")
    add("--val-set", default=unset, help="NAME | PATH (default: the train set's val split; never a test suite)")
    add("--data-root", default=unset, help="default: $BENCH_DATA or ./datasets")
    add("--output", default=unset, help="run folder (default results/train/<detector>-<train set>-<time>); "
                                        "with --resume, the folder to continue")
    add("--resume", action="store_true", help="continue the run in --output from its last finished epoch")
    add("--epochs", type=int, default=unset, help="default 50")
    add("--batch-size", type=int, default=unset, help="global batch, split over torchrun processes (default 32)")
    add("--lr", type=float, default=unset, help="default: the detector's (LFM 1e-4, NPR 2e-4)")
    add("--lr-decay", type=float, default=unset, help="lr factor every --lr-step epochs (default 0.9)")
    add("--lr-step", type=int, default=unset, help="default 10")
    add("--optimizer", choices=["adam", "sgd"], default=unset, help="default adam")
    add("--beta1", type=float, default=unset, help="Adam beta1 (default 0.9)")
    add("--beta2", type=float, default=unset, help="Adam beta2 (default 0.999)")
    add("--weight-decay", type=float, default=unset, help="default 0")
    add("--resize", type=parse_size, default=unset, help="N or none for native size (default 256)")
    add("--crop", type=parse_size, default=unset, help="random crop N or none (default 224)")
    add("--no-flip", dest="flip", action="store_false", default=unset, help="no random horizontal flip")
    add("--aux-loss-weight", type=float, default=unset, help="auxiliary (RKS) loss weight (default: the detector's)")
    add("--seed", type=int, default=unset, help="default 0")
    add("--no-deterministic", dest="deterministic", action="store_false", default=unset,
        help="allow nondeterministic kernels and cudnn benchmarking")
    add("--no-sync-bn", dest="sync_bn", action="store_false", default=unset,
        help="under torchrun, BatchNorm statistics per process instead of over the global batch")
    add("--max-steps-per-epoch", type=int, default=unset, help="cut epochs short (smoke tests)")
    add("--workers", type=int, default=unset, help="loader processes per training process (default min(8, CPUs))")
    add("--device", default=unset, help="auto, cpu or cuda (default auto)")
    add("--amp", choices=["bf16", "off"], default=unset,
        help="CUDA autocast (default off: float32, as the official training code)")
    add("--lr-schedule", choices=["official", "step"], default=unset,
        help="official (default): the x0.9 takes effect after epochs 11, 21, ... as NPR's train.py; "
             "step: after epochs 10, 20, ...")
    add("--checkpoint", choices=["last", "best"], default=unset,
        help="the checkpoint to evaluate: last (default, as the official code) or best (val ACC, then AP)")
    add("--val-transform", choices=["center-crop", "test-protocol"], default=unset,
        help="center-crop (default, the official validation loader: resize then centre crop of the crop size) "
             "or test-protocol (the val split's test-time protocol, no crop)")
    add("--init", choices=["none", "imagenet"], default=unset,
        help="initial weights: none (random, default) or imagenet (timm's pretrained weights for timm: names, "
             "torchvision's ResNet-50 for cnndetection; from a local file, never downloaded)")
    add("--mask-selection", choices=["none", "random", "all", "active"], default=unset,
        help="forgery masks for a mask-regularised detector (lae): none, random, all, or active "
             "(the model picks after --mask-query-epoch epochs); default none")
    add("--mask-budget", type=float, default=unset,
        help="random/active: masks for this fraction of the training images (default 0.03)")
    add("--mask-query-epoch", type=int, default=unset, help="active: epochs before the masks are requested (default 1)")
    add("--json", action="store_true", help="print the summary only, as JSON")


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the options ask for (only the options given: the others keep the recipe's values)."""
    from bench import api

    given = {name: getattr(args, name) for name in api.RECIPE_FIELDS if hasattr(args, name)}
    return api.train_config(given, resume=args.resume)


def run(args: argparse.Namespace) -> int:
    from bench import api

    config = config_from_args(args)
    result = api.train(config, resume=args.resume, progress=not (args.json or getattr(args, "quiet", False)))
    if not result.is_main:
        return 0
    if args.json:
        print(json.dumps(api.json_safe(result.summary()), indent=1))
        return 0
    resumed = f" (resumed after epoch {result.resumed_from})" if result.resumed_from is not None else ""
    print(f"trained {result.detector} for {result.epochs} epochs{resumed} in {result.seconds:.1f}s")
    if result.best_epoch is not None:
        print(f"best: epoch {result.best_epoch}  val acc {result.best['acc']:.4f}  ap {result.best['ap']:.4f}"
              f"  {result.best_path}")
    if result.last:
        print(f"last: epoch {result.epochs}  val acc {result.last['acc']:.4f}  ap {result.last['ap']:.4f}"
              f"  {result.last_path}")
    print(f"run folder: {result.output}")
    print(f"evaluate it ({result.checkpoint} checkpoint, by --checkpoint): "
          f"bench run --detector {result.detector} --weights {result.recommended_path} --suite all")
    return 0
