"""Training parity as behaviour: `bench train`'s loop and NPR's official training step, written out plainly,
move the same initial weights to the same weights on the same batches, across the epoch boundary where the
official schedule changes the lr.

NPR's official code (github.com/chuangchuangtan/NPR-DeepfakeDetection):
- networks/trainer.py: `loss_fn = nn.BCEWithLogitsLoss()`; `torch.optim.Adam(params that require grad,
  lr=opt.lr, betas=(opt.beta1, 0.999))` with `--beta1 0.9` (options/train_options.py); `optimize_parameters`:
  forward, `loss_fn(output.squeeze(1), label)`, `zero_grad()`, `backward()`, `step()`;
  `adjust_learning_rate`: every param group's lr *= 0.9.
- train.py: `model.train()`, then per epoch every batch's `optimize_parameters()`, and at the end of epoch
  e `if epoch % opt.delr_freq == 0 and epoch != 0: model.adjust_learning_rate()`, then validation in eval
  mode (which changes no weight); the README trains with `--lr 0.0002 --delr_freq 10`.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import bench.train.loop
from bench.train import TrainConfig, train
from detectors.checkpoints import read_state_dict
from detectors.npr import NPRNet

EPOCHS, DELR_FREQ, BATCH, LR, BETA1 = 4, 2, 4, 2e-4, 0.9


def write_images(root, n_per_class, seed, size=32):
    rng = np.random.default_rng(seed)
    for label in ("0_real", "1_fake"):
        (root / label).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            if label == "1_fake":
                pixels = pixels[::2, ::2].repeat(2, 0).repeat(2, 1)
            Image.fromarray(pixels).save(root / label / f"{i}.png")


def official_npr_training(initial: dict, batches: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> dict:
    """train.py's epoch loop around trainer.py's step, on the given batches of each epoch."""
    model = NPRNet()
    model.load_state_dict(initial)
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=LR, betas=(BETA1, 0.999))
    model.train()
    for epoch in range(EPOCHS):
        for x, label in batches[epoch]:
            output = model(x)  # NPRNet returns [B]: the official output.squeeze(1)
            loss = loss_fn(output, label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % DELR_FREQ == 0 and epoch != 0:
            for group in optimizer.param_groups:
                group["lr"] *= 0.9
    return model.state_dict()


@pytest.mark.slow
def test_bench_train_steps_equal_npr_official_steps_across_the_lr_change(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_images(data / "train", 4, seed=1)  # 8 images, batch 4: two steps an epoch, eight in all
    write_images(data / "val", 1, seed=2)
    seen: dict = {"inputs": [], "labels": [], "initial": None}

    def before(module, args):
        if isinstance(module, NPRNet) and module.training:
            if seen["initial"] is None:  # the weights (and BatchNorm buffers) before the first step
                seen["initial"] = copy.deepcopy(module.state_dict())
            seen["inputs"].append(args[0].detach().clone())

    real_loss = bench.train.loop.lfm_loss

    def loss_spy(output, target, aux_weight):
        seen["labels"].append(target.detach().clone())
        return real_loss(output, target, aux_weight)

    monkeypatch.setattr(bench.train.loop, "lfm_loss", loss_spy)
    config = TrainConfig(detector="npr", train_set=str(data / "train"), data_root=str(tmp_path / "root"),
                         output=str(tmp_path / "run"), resize=None, crop=None, flip=False, epochs=EPOCHS,
                         batch_size=BATCH, lr=LR, lr_step=DELR_FREQ, beta1=BETA1, workers=0, device="cpu")
    handle = nn.modules.module.register_module_forward_pre_hook(before)
    try:
        result = train(config, progress=False)
    finally:
        handle.remove()
    assert [round(record["lr"], 12) for record in result.history] == [LR, LR, LR, round(LR * 0.9, 12)]
    steps = len(seen["inputs"])
    assert steps == len(seen["labels"]) == EPOCHS * 2
    batches = [list(zip(seen["inputs"][e * 2:(e + 1) * 2], seen["labels"][e * 2:(e + 1) * 2])) for e in range(EPOCHS)]
    expected = official_npr_training(seen["initial"], batches)
    got = read_state_dict(result.last_path)
    assert set(got) == set(expected)
    moved = 0
    for key, want in expected.items():
        if not want.is_floating_point():
            assert torch.equal(got[key], want), key  # BatchNorm's num_batches_tracked: one per step
            continue
        difference = (got[key].double() - want.double()).abs().max().item()
        assert difference < 1e-6, (key, difference)
        moved += int(((want - seen["initial"][key]).abs() > LR).sum())
    assert moved > 10_000  # the steps moved most weights by more than the tolerance
