"""What one training step really does, checked from outside against hand computations.

A real `bench.train.train` run on a few tiny images is watched through module hooks: the tensor that
reaches the model (normalised?), the outputs it gives (main and Random-K logits), the loss the run logs
(main BCE + aux_weight x auxiliary BCE, written out by hand) and the weights after two steps (a
reference Adam written out by hand, from the hand loss's gradients). Random-K Sampling is checked on
its own and inside the model: random positions, different across seeds, not the Top-K set.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench.train import TrainConfig, train
from detectors import IMAGENET_MEAN, IMAGENET_STD, get_detector, load_detector
from lfm import LFM, random_k_per_channel

AUX_WEIGHT = 0.02
"""LFM's auxiliary (Random-K Sampling) loss weight: `get_loss` of the official code, networks/LFMSN.py."""
SIZE = 40  # lfm-k4 at 40x40 keeps 9 positions per channel: Random-K draws 4 of 9, dropout draws too


def write_images(root: Path, n_per_class: int, seed: int) -> Path:
    """`root/{0_real,1_fake}` of SIZE x SIZE noise: real pixels in 0..99, fake ones in 156..255, so that
    a normalised input's mean tells its label (the hooks below need the labels of a batch)."""
    rng = np.random.default_rng(seed)
    for label, (low, high) in (("0_real", (0, 100)), ("1_fake", (156, 256))):
        (root / label).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = rng.integers(low, high, (SIZE, SIZE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


def hand_normalise(pixels: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 -> [3, H, W]: ToTensor's x / 255, then Normalize's (x - mean) / std (ImageNet)."""
    x = pixels.astype(np.float64) / 255.0
    x = (x - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return torch.from_numpy(x.transpose(2, 0, 1)).float()


def hand_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))], in the overflow-safe form
    max(z, 0) - z y + log(1 + exp(-|z|))."""
    z = logits.double()
    return (z.clamp(min=0) - z * labels.double() + torch.log1p(torch.exp(-z.abs()))).mean()


class Watcher:
    """Global module hooks that record every training-mode forward of an LFM model."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.losses: list[float] = []
        self.terms: list[tuple[float, float]] = []
        """(main BCE, auxiliary BCE) of each step."""
        self.gradients: list[dict[str, torch.Tensor]] = []
        self.start: dict[str, torch.Tensor] | None = None

    def before(self, module, args):
        if isinstance(module, LFM) and module.training:
            if self.start is None:  # the weights before the first step
                self.start = {k: v.detach().clone() for k, v in module.named_parameters()}
            x = args[0].detach().clone()
            self.inputs.append(x)
            self.labels.append((x.mean(dim=(1, 2, 3)) > 0).double())  # fake images are bright

    def after(self, module, args, output):
        if isinstance(module, LFM) and module.training:
            main, aux = output  # Random-K Sampling on: (main logits, auxiliary logits)
            labels = self.labels[-1]
            main_bce, aux_bce = hand_bce(main, labels), hand_bce(aux, labels)
            loss = main_bce + AUX_WEIGHT * aux_bce
            self.losses.append(float(loss.detach()))
            self.terms.append((float(main_bce.detach()), float(aux_bce.detach())))
            named = [(k, p) for k, p in module.named_parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, [p for _, p in named], retain_graph=True)
            self.gradients.append({k: g.detach().clone() for (k, _), g in zip(named, grads)})

    def __enter__(self):
        self.handles = [nn.modules.module.register_module_forward_pre_hook(self.before),
                        nn.modules.module.register_module_forward_hook(self.after)]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


@pytest.fixture(scope="module")
def watched_run(tmp_path_factory):
    """lfm-k4 trained for one epoch of two steps (4 + 2 images), no crop or flip, Adam lr 1e-3."""
    root = tmp_path_factory.mktemp("train-step")
    data = root / "data"
    write_images(data / "train", 3, seed=1)
    write_images(data / "val", 1, seed=2)
    config = TrainConfig(detector="lfm-k4", train_set=str(data / "train"), data_root=str(root / "root"),
                         output=str(root / "run"), resize=None, crop=None, flip=False, epochs=1, batch_size=4,
                         lr=1e-3, workers=0, device="cpu")
    with Watcher() as watcher:
        result = train(config, progress=False)
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((data / "train").glob("*/*.png"))]
    return result, watcher, images, root / "run"


@pytest.mark.slow
def test_the_training_input_is_normalised(watched_run):
    _, watcher, images, _ = watched_run
    expected = torch.stack([hand_normalise(image) for image in images])
    seen = torch.cat(watcher.inputs)
    assert seen.shape == expected.shape == (6, 3, SIZE, SIZE)  # every training image once
    # each tensor the model got is the hand normalisation of one of the images, each image once
    matches = []
    for x in seen:
        close = (expected - x).abs().amax(dim=(1, 2, 3)) < 1e-5
        matches += close.nonzero().flatten().tolist()
    assert sorted(matches) == list(range(6)), matches
    assert seen.mean().item() == pytest.approx(expected.mean().item(), abs=1e-5)
    assert seen.std().item() == pytest.approx(expected.std().item(), abs=1e-5)


@pytest.mark.slow
def test_the_logged_loss_is_main_plus_weighted_auxiliary_bce(watched_run):
    result, watcher, _, folder = watched_run
    assert [len(labels) for labels in watcher.labels] == [4, 2]
    assert float(torch.cat(watcher.labels).sum()) == 3  # 3 real and 3 fake images, told apart by brightness
    # the epoch's loss is the image-weighted mean of the step losses
    expected = (4 * watcher.losses[0] + 2 * watcher.losses[1]) / 6
    assert result.history[0]["train_loss"] == pytest.approx(expected, rel=0, abs=1e-6)
    with open(folder / "log.csv", newline="") as f:
        logged = float(next(csv.DictReader(f))["train_loss"])
    assert logged == pytest.approx(expected, rel=0, abs=1e-6)
    # the auxiliary term is far above the tolerance: a loss without it (or with another weight) fails
    aux_share = (4 * AUX_WEIGHT * watcher.terms[0][1] + 2 * AUX_WEIGHT * watcher.terms[1][1]) / 6
    assert aux_share > 1e-3


@pytest.mark.slow
def test_two_steps_move_the_weights_as_a_hand_written_adam(watched_run):
    """Adam (Kingma & Ba 2015, Algorithm 1; torch's defaults eps=1e-8, no weight decay) on the gradients of
    the hand-computed loss, from the weights the run started with, must give the weights it saved."""
    _, watcher, _, folder = watched_run
    lr, beta1, beta2, eps = 1e-3, 0.9, 0.999, 1e-8
    params = {k: v.double() for k, v in watcher.start.items()}
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    v2 = {k: torch.zeros_like(v) for k, v in params.items()}
    for t, gradients in enumerate(watcher.gradients, start=1):
        for k, g in gradients.items():
            g = g.double()
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v2[k] = beta2 * v2[k] + (1 - beta2) * g * g
            m_hat, v_hat = m[k] / (1 - beta1**t), v2[k] / (1 - beta2**t)
            params[k] = params[k] - lr * m_hat / (v_hat.sqrt() + eps)
    saved = dict(load_detector("lfm-k4", str(folder / "last.pth")).model.named_parameters())
    compared = moved = 0
    for k in watcher.gradients[0]:
        # Adam's first steps are about lr x sign(g): where the exact gradient is 0 (a convolution bias
        # that a BatchNorm follows) the float noise left decides the sign, so only clear gradients count
        clear = torch.stack([g[k].abs() for g in watcher.gradients]).amin(0) > 1e-6
        got, want = saved[k].detach().double()[clear], params[k][clear]
        assert torch.allclose(got, want, rtol=0, atol=lr * 1e-3), (k, (got - want).abs().max().item())
        compared += int(clear.sum())
        moved += int(((got - watcher.start[k].double()[clear]).abs() > lr).sum())
    n_trainable = sum(g.numel() for g in watcher.gradients[0].values())
    assert compared > 0.9 * n_trainable and moved > 0.5 * n_trainable


def test_random_k_positions_are_random_and_not_top_k():
    """On a crafted map whose values are a permutation of 0..99, the values drawn name their positions."""
    n, k = 100, 16
    values = torch.randperm(n, generator=torch.Generator().manual_seed(0)).float()
    maps = values.view(1, 1, 10, 10)
    top = set(torch.arange(n - k, n).tolist())  # the 16 largest values, known by construction
    drawn, counts = set(), torch.zeros(n)
    for seed in range(200):
        torch.manual_seed(seed)
        sample = random_k_per_channel(maps, k).flatten()
        picked = sample.long().tolist()
        assert len(set(picked)) == k and (sample[:-1] >= sample[1:]).all()  # distinct, sorted descending
        assert set(picked) != top
        drawn.add(frozenset(picked))
        counts[picked] += 1
    assert len(drawn) == 200  # a new set of positions for every seed
    # uniform without replacement: each position is drawn with probability 16/100, 32 times in 200 on
    # average; all 100 are drawn (P(some position never drawn) < 100 x 0.84^200 ~ 1e-13) and no position
    # is drawn in more than 65 (> 6 standard deviations)
    assert counts.min() > 0 and counts.max() < 65


def test_the_models_auxiliary_branch_samples_randomly():
    """Inside LFM (training mode, no dropout): the second call of the shared head sees 16 values per channel
    taken from that channel's salience map, a different draw per seed, and not the channel's Top-16."""
    torch.manual_seed(0)
    model = get_detector("lfm-no-rbld").build().train()
    x = torch.randn(1, 3, 96, 96)
    seen: dict[str, list] = {"maps": [], "head": []}
    handles = [model.reduce.register_forward_hook(lambda m, a, out: seen["maps"].append(out.detach())),
               model.head.register_forward_hook(lambda m, a, out: seen["head"].append(a[0].detach()))]
    draws = []
    for seed in range(3):
        torch.manual_seed(seed)
        with torch.no_grad():
            model(x)
        maps = seen["maps"][-1].flatten(2)[0]  # [64, positions]
        top, sampled = seen["head"][-2].view(64, 16), seen["head"][-1].view(64, 16)
        assert torch.equal(top, torch.topk(maps, 16, dim=-1).values)  # the main branch: Top-16
        positions = []
        for channel in range(64):
            where = (maps[channel][None, :] == sampled[channel][:, None]).nonzero()[:, 1]
            assert len(where) == 16, "every sampled value is a value of its channel's map"
            positions.append(frozenset(where.tolist()))
        assert sum(p != frozenset(torch.topk(maps, 16).indices[c].tolist()) for c, p in enumerate(positions)) == 64
        draws.append(positions)
    for channel in range(64):
        assert len({draw[channel] for draw in draws}) == 3
    for handle in handles:
        handle.remove()
    assert math.isfinite(float(seen["head"][-1].sum()))
