"""What a detector declares: how to build it, how to feed it, which weights it uses by default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """Input normalisation the detector expects (applied after the suite's resize or native crop)."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    even_size: bool = True
    """The NPR residual needs even height and width: odd native sizes are cropped (and recorded)."""


@dataclass(frozen=True)
class Detector:
    """A registered detector. ``build()`` returns the model in eval mode with random weights; use
    :func:`detectors.load_detector` to get one with checkpoint weights loaded (strictly)."""

    name: str
    display_name: str
    build_model: Callable[[], nn.Module]
    weights_family: str
    """Detectors with the same family share checkpoints (e.g. ``lfm`` and ``lfm-no-rks``)."""
    default_weights: str | None = "official"
    """Tag of the weights used on paper suites when ``--weights`` is not given."""
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    key_map: tuple[tuple[str, str], ...] = ()
    """Checkpoint key prefix -> model key prefix, applied once when loading a checkpoint."""
    aux_loss_weight: float = 0.0
    """Weight of an auxiliary loss term (LFM's Random-K Sampling logit)."""
    train_lr: float = 1e-4
    """Learning rate of the detector's official training recipe."""
    description: str = ""
    reference: str = ""

    def build(self) -> nn.Module:
        return self.build_model().eval()
