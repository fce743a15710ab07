"""CNNDetection (Wang et al., CVPR 2020): torchvision's ResNet-50 with a single-logit head.

Its checkpoints are ``{'model': state_dict}`` with torchvision's key names; the loader unwraps that.

Facts from the official code (github.com/PeterWang512/CNNDetection):
- ``eval.py`` sets ``opt.no_resize = True`` and leaves ``no_crop`` off, so ``data/datasets.py``'s
  ``binary_dataset`` gives each test image ``CenterCrop(cropSize=224)`` of the file at its native size, then
  ``ToTensor`` and ImageNet's ``Normalize``: that is ``--protocol own`` here.
- Training (``isTrain``) resizes with ``TF.resize(img, loadSize=256)``: an int size, so the *shorter* side
  becomes 256 and the aspect ratio is kept (not a 256x256 resize), then ``RandomCrop(224)``. ``bench train``
  follows NPR's recipe (``Resize((256, 256))``) for every detector; docs/conventions.md says so.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench.errors import BenchError
from detectors.base import Detector, Preprocessing
from detectors.registry import register_detector

IMAGENET_WEIGHTS = "imagenet:resnet50"


class CNNDetectionNet(nn.Module):
    """ResNet-50 returning logits of shape [B] (keys are torchvision's, under no prefix)."""

    def __init__(self) -> None:
        from torchvision.models import resnet50  # slow to import; only when the model is built

        super().__init__()
        self.net = resnet50(weights=None, num_classes=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def imagenet_init(model: nn.Module) -> Path:
    """torchvision's ImageNet ResNet-50 (what CNNDetection fine-tuned) into the model, all but the head.

    The file comes from $BENCH_WEIGHTS_DIR, the harness's cache or torch.hub's cache; never downloaded."""
    from detectors.checkpoints import CheckpointError, read_state_dict
    from detectors.weights import get_weights_entry, require_local, sha256_of

    entry = get_weights_entry(IMAGENET_WEIGHTS)
    hub_copy = Path(torch.hub.get_dir()) / "checkpoints" / entry.filename
    path = require_local(entry, "cnndetection --init imagenet", also=(hub_copy,))
    prefix = entry.filename.rsplit("-", 1)[-1].split(".")[0]  # torch.hub names carry their hash's start
    if not sha256_of(path).startswith(prefix):
        raise BenchError(f"{path} is not torchvision's {entry.filename}: its sha256 does not start with {prefix}")
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith("fc.")}
    missing, unexpected = model.net.load_state_dict(state, strict=False)
    if sorted(missing) != ["fc.bias", "fc.weight"] or unexpected:
        raise CheckpointError(f"{path} is not a torchvision ResNet-50: missing {missing}, unexpected {unexpected}")
    return path


@register_detector
def cnndetection() -> Detector:
    return Detector(
        name="cnndetection",
        checkpoint_wrapper="model",
        display_name="CNNDetection",
        build_model=CNNDetectionNet,
        weights_family="cnndetection",
        default_weights="blur_jpg_prob0.5",
        # ImageNet's mean/std (data/datasets.py); its own protocol: CenterCrop(224) of the file, no resize
        preprocessing=Preprocessing(even_crop=False, own_resize=None, own_crop=224),
        key_map=(("", "net."),),
        train_lr=1e-4,
        reported_method="CNNDetection",
        cam_target_layer="net.layer4",  # the last residual stage
        feature_layer="net.avgpool",  # the globally pooled 2048-d vector net.fc reads
        imagenet_init=imagenet_init,
        description="CNNDetection: ImageNet ResNet-50 fine-tuned on ProGAN with blur+JPEG augmentation",
        reference="CNN-generated images are surprisingly easy to spot... for now (CVPR 2020)",
    )
