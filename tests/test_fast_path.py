"""The fast scoring path (BatchNorm folded into convolutions, sliced residual, channels-last, micro-batches)
gives the plain eval-mode model's logits, for every registered detector.

BatchNorm statistics and affine parameters are randomised first: with the default statistics (mean 0,
variance 1, weight 1, bias 0) a BatchNorm is nearly the identity, so a fold that drops the bias, the
mean or the variance, or folds a BatchNorm into the wrong convolution, would still pass.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.engine.inference import prepare_scorer
from detectors import get_detector, list_detectors

# float32 logits through up to 50 layers: folding changes the order of a few multiplications, which moves
# logits by ~1e-6 relative (measured <= 2e-6 here). A dropped BatchNorm bias moves them by > 1e-2.
RELATIVE_TOLERANCE = 1e-4
SIZE = 96  # the smallest size every detector takes (lfm-k64 keeps 100 positions for its Top-64)


def randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> int:
    """Non-trivial running statistics and affine parameters in every BatchNorm; returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
            count += 1
    return count


def hand_normalised(pixels: torch.Tensor, mean, std) -> torch.Tensor:
    """ToTensor + Normalize written out: x / 255, minus the mean, over the std, per channel."""
    x = pixels.double() / 255.0
    return ((x - torch.tensor(mean, dtype=torch.float64)[:, None, None])
            / torch.tensor(std, dtype=torch.float64)[:, None, None]).float()


SLOW_TO_BUILD = {"univfd"}  # CLIP ViT-L/14: 300M parameters on CPU
WITH_BATCHNORM = {"lfm", "npr", "cnndetection"}  # a fold that breaks must show on these


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TO_BUILD else n for n in list_detectors()
])
def test_fast_path_equals_the_plain_model_with_random_batchnorm(name):
    detector = get_detector(name)
    generator = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    model = detector.build()
    n_batchnorm = randomise_batchnorm(model, generator)
    if name in WITH_BATCHNORM:
        assert n_batchnorm > 0, f"{name} has no BatchNorm: this test would not test a fold"
    # 3 images: on CPU the fast path scores pieces of two, so a batch of 3 also checks the split
    size = detector.preprocessing.input_size or SIZE  # a fixed-size ViT takes its own size only
    pixels = torch.randint(0, 256, (3, 3, size, size), dtype=torch.uint8, generator=generator)

    with torch.no_grad():
        plain = model.eval()(hand_normalised(pixels, detector.preprocessing.mean, detector.preprocessing.std))
        fast = prepare_scorer(model, detector.preprocessing, "cpu", optimize=True)(pixels)

    assert plain.shape == fast.shape == (3,)
    scale = plain.abs().max().item()
    assert scale > 1e-3, f"{name}: the plain logits are ~0, which would hide any difference"
    assert torch.allclose(fast, plain, rtol=0, atol=RELATIVE_TOLERANCE * scale), (
        f"{name}: fast {fast.tolist()} vs plain {plain.tolist()}")
    # the model itself was not folded in place (prepare_scorer works on a copy)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_batchnorm
