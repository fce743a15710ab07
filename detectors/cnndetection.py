"""CNNDetection (Wang et al., CVPR 2020): torchvision's ResNet-50 with a single-logit head.

Its checkpoints are ``{'model': state_dict}`` with torchvision's key names; the loader unwraps that.
"""

from __future__ import annotations

import torch
from torch import nn

from detectors.base import Detector, Preprocessing
from detectors.registry import register_detector


class CNNDetectionNet(nn.Module):
    """ResNet-50 returning logits of shape [B] (keys are torchvision's, under no prefix)."""

    def __init__(self) -> None:
        from torchvision.models import resnet50  # slow to import; only when the model is built

        super().__init__()
        self.net = resnet50(weights=None, num_classes=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


@register_detector
def cnndetection() -> Detector:
    return Detector(
        name="cnndetection",
        display_name="CNNDetection",
        build_model=CNNDetectionNet,
        weights_family="cnndetection",
        default_weights="blur_jpg_prob0.5",
        preprocessing=Preprocessing(even_crop=False),
        key_map=(("", "net."),),
        train_lr=1e-4,
        reported_method="CNNDetection",
        cam_target_layer="net.layer4",  # the last residual stage
        feature_layer="net.avgpool",  # the globally pooled 2048-d vector net.fc reads
        description="CNNDetection: ImageNet ResNet-50 fine-tuned on ProGAN with blur+JPEG augmentation",
        reference="CNN-generated images are surprisingly easy to spot... for now (CVPR 2020)",
    )
