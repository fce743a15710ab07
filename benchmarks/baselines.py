"""The baselines the benchmarks measure against, written the plain way.

- :class:`OfficialLFM`: a port of the official forward (github lmlpy/LFM, networks/LFMSN.py) as DESIGN.md
  section 2 describes it: the NPR residual by two frozen 2x2 convolutions, the Salience Network with its
  BatchNorm layers unfused, and the Top-K pooling computed twice, because the official code writes
  ``self.pool_adapter(maps).reshape(self.pool_adapter(maps).size(0), -1)``. Module names are the
  official ones, so the official checkpoint (or ``detectors.export_state_dict``) loads strictly.
- :func:`imagefolder_scores`: the official test pipeline: torchvision ``ImageFolder`` with
  Resize((256, 256)) -> ToTensor -> Normalize, a ``DataLoader``, the model under ``torch.no_grad``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import datasets, transforms

from detectors import IMAGENET_MEAN, IMAGENET_STD


class OfficialSalienceNetwork(nn.Module):
    """``cnn``: 4 x [Conv2d(k=2) + BatchNorm + ReLU], 2x2 max-pooling after the first three."""

    def __init__(self) -> None:
        super().__init__()
        channels = [3, 64, 128, 256, 512]
        for i in range(4):
            block = nn.Sequential(
                nn.Conv2d(channels[i], channels[i + 1], kernel_size=2, padding=0),
                nn.BatchNorm2d(channels[i + 1]),
                nn.ReLU(inplace=True),
            )
            setattr(self, f"layer{i + 1}", block)
        self.maxpool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.layer1(x))
        x = self.maxpool(self.layer2(x))
        x = self.maxpool(self.layer3(x))
        return self.layer4(x)


class TopKPool(nn.Module):
    """Each channel's K largest values, largest first: [B, C, H, W] -> [B, C, K]."""

    def __init__(self, k: int = 16) -> None:
        super().__init__()
        self.k = k

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(2).topk(self.k, dim=-1, largest=True, sorted=True).values


class OfficialLFM(nn.Module):
    def __init__(self, k: int = 16) -> None:
        super().__init__()
        self.downsample_conv = nn.Conv2d(3, 3, kernel_size=2, stride=2, bias=False)
        self.upsample_conv = nn.ConvTranspose2d(3, 3, kernel_size=2, stride=2, bias=False)
        self.cnn = OfficialSalienceNetwork()
        self.covn1_1 = nn.Conv2d(512, 64, kernel_size=1, bias=False)
        self.pool_adapter = TopKPool(k)
        self.fc1 = nn.Linear(64 * k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = (x - self.upsample_conv(self.downsample_conv(x))).abs()
        maps = self.covn1_1(self.cnn(residual))
        # the official line, Top-K twice included
        features = self.pool_adapter(maps).reshape(self.pool_adapter(maps).size(0), -1)
        return self.fc1(features)


def official_lfm(state_dict: dict[str, torch.Tensor]) -> OfficialLFM:
    """The plain port with official-named weights loaded strictly, in eval mode."""
    model = OfficialLFM()
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def official_transform(size: int = 256) -> transforms.Compose:
    return transforms.Compose([
        transforms.Resize((size, size)),  # PIL bilinear on the PIL image, as the LFM/NPR test scripts
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def imagefolder_scores(root: Path, model: nn.Module, batch_size: int = 32, workers: int = 2) -> dict[str, float]:
    """Logits of every image under ``root/{0_real,1_fake}``, keyed by the path relative to ``root``."""
    root = Path(root)
    dataset = datasets.ImageFolder(str(root), transform=official_transform())
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    logits: list[float] = []
    with torch.no_grad():
        for images, _labels in loader:
            logits.extend(model(images).reshape(-1).tolist())
    paths = [Path(path).relative_to(root).as_posix() for path, _ in dataset.samples]
    return dict(zip(paths, logits, strict=True))
