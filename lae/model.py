"""LAE: the locality-aware autoencoder (pure PyTorch; imports nothing from the harness).

    image -> NPR residual (LAEConfig.input) -> encoder (stride-2 conv stages) -> latent [real half | fake half]
          -> local logits  = mean_c(fake half) - mean_c(real half), per latent position
          -> logit         = mean of the local logits over positions      (the decision)
          -> decoder -> reconstruction of the input                         (the autoencoder)
    interpretation map = sigmoid(local logits), compared with the forgery mask while training.

`LAEConfig` (lae/config.py) says why each of these choices was made.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from lae.config import LAEConfig


class LAEOutput(NamedTuple):
    """What the model returns in training mode (eval mode returns the logits alone)."""

    logit: torch.Tensor
    """[B] the decision."""
    local: torch.Tensor
    """[B, h, w] local logits; their spatial mean is `logit`."""
    reconstruction: torch.Tensor
    """[B, 3, H', W'] the decoder's output (H' = H rounded down to the stride)."""
    input: torch.Tensor
    """[B, 3, H, W] what the encoder saw (the residual or the image), which the decoder reconstructs."""


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    def __init__(self, config: LAEConfig) -> None:
        super().__init__()
        widths = [config.channels[0], *config.channels]
        self.stem = _conv(3, widths[0])
        self.stages = nn.Sequential(*[
            nn.Sequential(_conv(widths[i], widths[i + 1], stride=2), _conv(widths[i + 1], widths[i + 1]))
            for i in range(len(config.channels))
        ])
        # ReLU: the halves' activations are non-negative, so "how active" is their size
        self.latent = nn.Sequential(nn.Conv2d(widths[-1], 2 * config.latent_channels, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.latent(self.stages(self.stem(x)))


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x - nearest_up(x[::2, ::2]): what nearest-neighbour up-sampling of the 2x-subsampled image cannot
    explain (an odd last row/column is its own block's top-left, so its residual is 0)."""
    up = x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    return x - up[..., : x.shape[-2], : x.shape[-1]]


class Decoder(nn.Module):
    def __init__(self, config: LAEConfig) -> None:
        super().__init__()
        widths = [*reversed(config.channels), config.channels[0]]
        self.entry = _conv(2 * config.latent_channels, widths[0])
        self.stages = nn.Sequential(*[
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(widths[i], widths[i + 1]))
            for i in range(len(config.channels))
        ])
        self.out = nn.Conv2d(widths[-1], 3, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.stages(self.entry(z)))


class LAE(nn.Module):
    def __init__(self, config: LAEConfig | None = None) -> None:
        super().__init__()
        self.config = config or LAEConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)

    def local_logits(self, latent: torch.Tensor) -> torch.Tensor:
        real, fake = latent.chunk(2, dim=1)
        return fake.mean(dim=1) - real.mean(dim=1)

    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return npr_residual(x) if self.config.input == "residual" else x

    def forward(self, x: torch.Tensor) -> torch.Tensor | LAEOutput:
        seen = self.encoder_input(x)
        latent = self.encoder(seen)
        local = self.local_logits(latent)
        logit = local.mean(dim=(1, 2))
        if not self.training:
            return logit
        return LAEOutput(logit, local, self.decoder(latent), seen)

    @torch.no_grad()
    def interpret(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H, W] interpretation map in [0, 1] at the input's size (1 = the decision comes from here)."""
        local = self.local_logits(self.encoder(self.encoder_input(x)))
        return interpretation_map(local, x.shape[-2:])


def interpretation_map(local: torch.Tensor, size) -> torch.Tensor:
    """Local logits [B, h, w] -> map [B, H, W] in [0, 1], bilinearly up-sampled to `size`."""
    probabilities = torch.sigmoid(local)[:, None]
    return F.interpolate(probabilities, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def mask_targets(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Pixel masks [B, H, W] (bool or 0/1) -> the fraction of forged pixels in each map cell [B, h, w]."""
    return F.adaptive_avg_pool2d(masks[:, None].float(), grid)[:, 0]


def interpretation_loss(local: torch.Tensor, masks: torch.Tensor, has_mask: torch.Tensor) -> torch.Tensor:
    """Mean over the images with `has_mask` of the per-cell BCE between sigmoid(local) and the mask's
    fraction per cell. d loss / d local = (sigmoid(local) - target) / cells: zero where map and mask agree,
    towards the mask where they do not. Exactly 0 (with a zero gradient) when no image has a mask."""
    if not bool(has_mask.any()):
        return local.sum() * 0.0
    chosen = has_mask.bool()
    target = mask_targets(masks[chosen], tuple(local.shape[-2:]))
    per_image = F.binary_cross_entropy_with_logits(local[chosen], target, reduction="none").mean(dim=(1, 2))
    return per_image.mean()


def lae_loss(output: LAEOutput | torch.Tensor, target: torch.Tensor, config: LAEConfig,
             masks: torch.Tensor | None = None, has_mask: torch.Tensor | None = None) -> torch.Tensor:
    """classification (BCE-with-logits) + reconstruction_weight x L1 reconstruction
    + interpretation_weight x the interpretation regulariser on the masked images (none: no term)."""
    if not isinstance(output, LAEOutput):  # eval-mode output: the decision only
        return F.binary_cross_entropy_with_logits(output, target)
    loss = F.binary_cross_entropy_with_logits(output.logit, target)
    if config.reconstruction_weight:
        # sizes that are not a multiple of the stride come back rounded: compare the common part
        height = min(output.reconstruction.shape[-2], output.input.shape[-2])
        width = min(output.reconstruction.shape[-1], output.input.shape[-1])
        loss = loss + config.reconstruction_weight * F.l1_loss(output.reconstruction[..., :height, :width],
                                                               output.input[..., :height, :width])
    if masks is not None and has_mask is not None and config.interpretation_weight:
        chosen = has_mask.bool()
        if config.regularise_reals:
            chosen = chosen | (target < 0.5)
        loss = loss + config.interpretation_weight * interpretation_loss(output.local, masks, chosen)
    return loss
