"""The fast eval path shared by `bench run`, `bench predict` and `bench profile`.

Logits stay within 1e-4 of the plain model (tests check it); what changes is how they are computed:
- BatchNorm folded into the preceding convolution (one pass over the activations instead of two);
- modules that offer an `inference_equivalent()` swapped for it (LFM's residual: tensor slicing instead
  of two 2x2 convolutions, when they are the official kernels);
- channels-last memory layout where it helps (CPU and CUDA convolutions prefer it);
- uint8 images go to the device and are normalised there (4x less to copy than float32);
- on CPU, batches scored in pieces of two images, which keep the activations in cache;
- optional ``torch.compile`` and CUDA autocast (bf16/fp16).
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from detectors.base import Preprocessing

CPU_MICRO_BATCH = 2
"""Images per forward pass on CPU (see FastScorer); measured best for LFM and NPR on 2 cores."""


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d into that conv, in place.

    Two patterns cover the registered detectors: ``Sequential(conv, bn, ...)`` (LFM blocks, ResNet
    downsample) and sibling attributes ``convN``/``bnN`` (ResNet stems and bottlenecks)."""
    for parent in list(model.modules()):
        if isinstance(parent, nn.Sequential):
            children = list(parent)
            for i in range(len(children) - 1):
                conv, bn = children[i], children[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    parent[i] = fuse_conv_bn_eval(conv, bn)
                    parent[i + 1] = nn.Identity()
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and name.startswith("conv"):
                bn = getattr(parent, "bn" + name[len("conv"):], None)
                if isinstance(bn, nn.BatchNorm2d):
                    setattr(parent, name, fuse_conv_bn_eval(child, bn))
                    setattr(parent, "bn" + name[len("conv"):], nn.Identity())
    return model


def swap_inference_equivalents(model: nn.Module) -> nn.Module:
    """Put each submodule's ``inference_equivalent()`` (a method a model file may define: a module that
    computes the same outputs faster in eval mode, e.g. LFM's sliced NPR residual) in its place, in place."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            equivalent = getattr(child, "inference_equivalent", None)
            if callable(equivalent):
                setattr(parent, name, equivalent())
    return model


class FastScorer(nn.Module):
    """uint8 [B, 3, H, W] on any device -> float32 logits [B], with the detector's normalisation.

    ``micro_batch`` splits a batch into pieces of that many images. On CPU this is what keeps LFM fast:
    its first block writes ~17 MB of activations per 256x256 image, so a batch of 32 falls out of the
    last-level cache and throughput halves; pieces of 2 stay in cache (benchmarks/README.md)."""

    def __init__(
        self, model: nn.Module, preprocessing: Preprocessing, channels_last: bool, micro_batch: int | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.micro_batch = micro_batch
        self.preprocessing = preprocessing

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.micro_batch and len(pixels) > self.micro_batch:
            return torch.cat([self.score(piece) for piece in pixels.split(self.micro_batch)])
        return self.score(pixels)

    def score(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.preprocessing.normalize(pixels)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x).float()


def prepare_scorer(
    model: nn.Module,
    preprocessing: Preprocessing,
    device: torch.device | str = "cpu",
    *,
    optimize: bool = True,
    channels_last: bool | None = None,
    compile: bool = False,
) -> FastScorer:
    """An eval-mode scorer on ``device``. ``optimize=False`` keeps the plain model (for comparisons)."""
    device = torch.device(device)
    model = copy.deepcopy(model).eval()
    if optimize:
        swap_inference_equivalents(fold_batchnorm(model))
    if channels_last is None:
        channels_last = optimize
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    micro_batch = CPU_MICRO_BATCH if optimize and device.type == "cpu" else None
    scorer = FastScorer(model, preprocessing, channels_last, micro_batch).to(device).eval()
    for parameter in scorer.parameters():
        parameter.requires_grad_(False)
    if compile:
        scorer = torch.compile(scorer, dynamic=True)
    return scorer


def autocast_context(device: torch.device | str, amp: str | None):
    """bf16/fp16 autocast on CUDA; a no-op elsewhere or with ``amp`` off (CPU scores stay float32)."""
    device = torch.device(device)
    if device.type != "cuda" or amp in (None, "off"):
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast("cuda", dtype=dtype)


def pick_device(spec: str = "auto") -> torch.device:
    from bench.errors import BenchError

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    try:
        return torch.device(spec)
    except RuntimeError as error:
        raise BenchError(f"unknown device {spec!r}: use auto, cpu or cuda[:N]") from error
