"""SAFE (Li et al., "Improving Synthetic Image Detection Towards Generalization: An Image Transformation
Perspective", arXiv 2408.06741, KDD 2025; Apache-2.0): a truncated ResNet-50 on the high-frequency wavelet
component of the image.

Facts from the official code (github.com/Ouxiang-Li/SAFE):
- ``models/resnet.py``: ``resnet50(num_classes=2)`` builds the stem (3x3 stride-2 ``conv1``, ``bn1``,
  max-pool), ``layer1`` and ``layer2`` of ResNet-50 and ``fc1 = Linear(512, 2)`` after global average
  pooling: NPR's network with two outputs. Its forward first replaces the image by the diagonal detail
  (HH) of a one-level 2-D DWT, ``pytorch_wavelets.DWTForward(J=1, wave='bior1.3', mode='symmetric')``,
  ``Yh[0][:, :, 2]``, resized back to the input's size with ``transforms.Resize`` (bilinear; antialias on,
  torchvision >= 0.17).
- ``data/datasets.py`` and ``scripts/eval.sh``: test images are ``CenterCrop(256)`` (``--transform_mode
  crop``; no resize) then ``ToTensor`` (no mean/std normalisation).
- ``engine_finetune.py``: the score is ``softmax(output)[:, 1]``; here the logit is ``out[:, 1] - out[:, 0]``,
  whose sigmoid is that softmax.
- ``utils.save_model``: checkpoints are ``{'model', 'optimizer', 'epoch', 'scaler', 'args'}``; the loader
  takes ``model`` (``args`` is an argparse.Namespace, allowed by the safe loader).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from detectors.base import Detector, Preprocessing
from detectors.npr import TruncatedResNet
from detectors.registry import register_detector

SAFE_REFERENCE = ("Improving Synthetic Image Detection Towards Generalization: An Image Transformation "
                  "Perspective (Li et al., arXiv 2408.06741, KDD 2025)")

# pywt.Wavelet("bior1.3").dec_hi: the analysis high-pass, Haar's with two zeros each side
BIOR13_DEC_HI = (0.0, 0.0, -0.7071067811865476, 0.7071067811865476, 0.0, 0.0)


def symmetric_indices(n: int, before: int, after: int, device=None) -> torch.Tensor:
    """Indices of a half-sample symmetric extension (``pywt``'s 'symmetric': ... x1 x0 | x0 x1 ... x_{n-1} |
    x_{n-1} x_{n-2} ...) of a length-n axis by ``before`` and ``after`` samples."""
    index = torch.arange(-before, n + after, device=device) % (2 * n)
    return torch.where(index >= n, 2 * n - 1 - index, index)


def dwt_highpass(x: torch.Tensor, dec_hi: torch.Tensor, dim: int) -> torch.Tensor:
    """One-level analysis high-pass along ``dim`` (2 = height, 3 = width) in pywt's 'symmetric' mode:
    ``floor((n + L - 1) / 2)`` outputs ``y[k] = sum_j dec_hi[j] * x_ext[2k + L - 1 - j]``, where ``x_ext``
    is the extension by ``p // 2`` samples before and ``(p + 1) // 2`` after, ``p = 2 (out - 1) - n + L``
    (as ``pytorch_wavelets``' ``afb1d`` computes it, matching ``pywt.dwt``)."""
    n, length = x.shape[dim], dec_hi.numel()
    out = (n + length - 1) // 2
    pad = 2 * (out - 1) - n + length
    x = x.index_select(dim, symmetric_indices(n, pad // 2, (pad + 1) // 2, x.device))
    channels = x.shape[1]
    shape = (length, 1) if dim == 2 else (1, length)
    kernel = dec_hi.flip(0).to(x.dtype).reshape(1, 1, *shape).expand(channels, 1, *shape)
    return F.conv2d(x, kernel, stride=(2, 1) if dim == 2 else (1, 2), groups=channels)


class HighFrequencyDWT(nn.Module):
    """SAFE's input: the HH sub-band of a bior1.3 DWT (symmetric mode), resized bilinearly (antialias,
    as torchvision's Resize on tensors) back to the input's height and width."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("dec_hi", torch.tensor(BIOR13_DEC_HI), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        hh = dwt_highpass(dwt_highpass(x, self.dec_hi, dim=3), self.dec_hi, dim=2)
        return F.interpolate(hh, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


class SAFENet(TruncatedResNet):
    """NPR's truncated ResNet-50 with a two-way head on the HH band; module names follow the official
    ``models/resnet.py`` so that its checkpoints load strictly."""

    def __init__(self) -> None:
        super().__init__(head_outputs=2)
        self.dwt = HighFrequencyDWT()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.trunk(self.dwt(x))
        return out[:, 1] - out[:, 0]  # sigmoid of this = softmax(out)[:, 1], SAFE's score


@register_detector
def safe() -> Detector:
    return Detector(
        name="safe",
        checkpoint_wrapper="model",
        display_name="SAFE",
        build_model=SAFENet,
        weights_family="safe",
        default_weights="official",
        # ToTensor only: pixels / 255, no mean/std; its own protocol crops 256 without resizing
        preprocessing=Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), even_crop=False,
                                    own_resize=None, own_crop=256),
        train_lr=1e-4,
        cam_target_layer="layer2",  # the last residual stage
        feature_layer="avgpool",  # the pooled 512-d vector fc1 reads (flattened by the feature hook)
        reported_method="SAFE",
        description="SAFE: ResNet-50 stem + layer1 + layer2 on the bior1.3 DWT's HH band, 2-way head",
        reference=SAFE_REFERENCE,
    )
