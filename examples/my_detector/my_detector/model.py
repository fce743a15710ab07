"""TinyNPR: NPR's idea at its smallest. The input's NPR residual (each pixel minus the top-left pixel of
its 2x2 block, what nearest-neighbour up-sampling leaves behind; Tan et al., CVPR 2024) goes through one
3x3 convolution, a ReLU, global average pooling and a linear head to one logit (> 0: fake).

Plain PyTorch: the model knows nothing of lfm-bench. The module names matter to the harness only through
the detector's declaration (my_detector/detector.py): `conv` is the layer Grad-CAM explains, `pool` the
output that feeds the head (the embedding `bench embed` reads).
"""

from __future__ import annotations

import torch
from torch import nn


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x [B, C, H, W] (H, W even) minus its nearest-neighbour down- then up-sampled copy."""
    b, c, h, w = x.shape
    blocks = x.reshape(b, c, h // 2, 2, w // 2, 2)
    return (blocks - blocks[:, :, :, :1, :, :1]).reshape(b, c, h, w)


class TinyNPR(nn.Module):
    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, kernel_size=3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised RGB [B, 3, H, W] -> logits [B]."""
        features = self.pool(self.relu(self.conv(npr_residual(x))))
        return self.head(features.flatten(1)).squeeze(1)
