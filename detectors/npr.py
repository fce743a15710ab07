"""NPR (Tan et al., CVPR 2024): ResNet-50's stem, layer1 and layer2 on 2/3 x the NPR residual.

Module names follow the official `networks/resnet.py` so that `NPR.pth` loads strictly: `conv1` is a
3x3 stride-2 convolution (not ResNet's 7x7), the head is `fc1` (512 -> 1).
"""

from __future__ import annotations

import torch
from torch import nn

from detectors.base import Detector
from detectors.registry import register_detector
from lfm import SlicedNPRResidual

NPR_REFERENCE = (
    "Rethinking the Up-Sampling Operations in CNN-based Generative Network for Generalizable "
    "Deepfake Detection (CVPR 2024)"
)


def _stage(in_channels: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    # imported here: torchvision.models costs seconds to import, and listing detectors should not pay it
    from torchvision.models.resnet import Bottleneck

    out_channels = planes * Bottleneck.expansion
    downsample = nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )
    layers = [Bottleneck(in_channels, planes, stride, downsample)]
    layers += [Bottleneck(out_channels, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class TruncatedResNet(nn.Module):
    """ResNet-50's stem (a 3x3 stride-2 conv), layer1 and layer2, global average pooling and `fc1`, with the
    official module names: NPR's network, and SAFE's (which reuses it with a two-way head)."""

    def __init__(self, head_outputs: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, blocks=3, stride=1)
        self.layer2 = _stage(256, 128, blocks=4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(512, head_outputs)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] model input -> fc1's output [B, head_outputs]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc1(self.avgpool(x).flatten(1))


class NPRNet(TruncatedResNet):
    def __init__(self) -> None:
        super().__init__(head_outputs=1)
        self.residual = SlicedNPRResidual()  # x - nearest_up(nearest_down(x)), as F.interpolate gives it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.residual(x) * (2.0 / 3.0)).squeeze(1)


@register_detector
def npr() -> Detector:
    return Detector(
        name="npr",
        display_name="NPR",
        build_model=NPRNet,
        weights_family="npr",
        train_lr=2e-4,  # the NPR README's training command
        reported_method="NPR",
        cam_target_layer="layer2",  # the last residual stage
        feature_layer="avgpool",  # the globally pooled 512-d vector fc1 reads
        description="NPR: ResNet-50 stem + layer1 + layer2 on the NPR residual x 2/3",
        reference=NPR_REFERENCE,
    )
