"""What a detector declares: how to build it, how to feed it, which weights it uses by default.

Preprocessing is data (as torchvision's ``Weights.transforms`` and timm's pretrained config are): the
scorer, the trainer, explanations and ``bench profile`` all read the mean, std, interpolation and size
rules from here, and ``Preprocessing.normalize`` is the one normalisation in the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")
"""PIL resampling filters a detector may ask for (the paper's protocol: bilinear)."""


@dataclass(frozen=True)
class Preprocessing:
    """How decoded uint8 RGB pixels become the model's input.

    The suite's protocol decides the size (Resize((256, 256)) or native); the detector decides everything
    else. ``own_resize``/``own_crop`` describe the detector's own paper's test protocol (``--protocol own``),
    used only when asked for."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    """PIL filter of every resize (torchvision's Resize on a PIL image uses bilinear by default)."""
    even_crop: bool = True
    """The NPR residual needs even height and width: odd native sizes lose their last row/column."""
    input_kind: str = "rgb"
    """What the model takes: ``rgb`` = normalised RGB pixels [B, 3, H, W] (the only kind so far)."""
    own_resize: int | None = None
    """The detector's own test protocol: resize to this square size first (None: keep the size)."""
    own_crop: int | None = None
    """The detector's own test protocol: then a centre crop of this square size (None: no crop)."""
    input_size: int | None = None
    """A fixed square input the model needs under every protocol (a ViT with learned position embeddings,
    e.g. CLIP ViT-L/14: 224): a centre crop of this size after the protocol's resize. None: any size."""

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {INTERPOLATIONS}")
        if self.input_kind != "rgb":
            raise ValueError(f"input_kind {self.input_kind!r} is not supported (only 'rgb')")
        for name in ("own_resize", "own_crop", "input_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive size in pixels, got {value}")

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] (or [3, H, W]) on any device -> float32 model input.

        Exactly ToTensor's x/255 then Normalize's (x - mean)/std, in that order: the NPR residual subtracts
        neighbouring pixels, so even a re-associated normalisation moves logits by ~1e-5."""
        x = pixels.float() / 255.0
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std


@dataclass(frozen=True)
class Backbone:
    """A frozen part of a detector whose weights come from their own file, not from the detector's
    checkpoint (UnivFD: OpenAI's CLIP ViT-L/14; its checkpoint holds only the linear head)."""

    weights: str
    """The named weights entry of the file (``family:tag`` in :mod:`detectors.weights`)."""
    load: Callable[[nn.Module, Path], None]
    """Fills the frozen part of a freshly built model from the file (strictly)."""


@dataclass(frozen=True)
class Detector:
    """A registered detector. ``build()`` returns the model in eval mode with random weights; use
    :func:`detectors.load_detector` to get one with checkpoint weights loaded (strictly)."""

    name: str
    display_name: str
    build_model: Callable[[], nn.Module]
    weights_family: str
    """Detectors with the same family share checkpoints (e.g. ``lfm`` and ``lfm-official``)."""
    default_weights: str | None = "official"
    """Tag of the weights used on paper suites when ``--weights`` is not given."""
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    key_map: tuple[tuple[str, str], ...] = ()
    """Checkpoint key prefix -> model key prefix, applied once when loading a checkpoint."""
    aux_loss_weight: float = 0.0
    """Weight of an auxiliary loss term (LFM's Random-K Sampling logit)."""
    train_lr: float = 1e-4
    """Learning rate of the detector's official training recipe."""
    cam_target_layer: str | None = None
    """Dotted module name whose activations class-activation maps use (``bench explain``)."""
    feature_layer: str | None = None
    """Dotted module name whose output is the pooled feature vector that feeds the head (``bench embed``):
    a forward hook on it gives that vector, flattened to [B, D] (a global pool's [B, D, 1, 1] included);
    see :mod:`detectors.layers`."""
    reported_method: str | None = None
    """The method name of this detector's rows in the paper's tables (None: no reported row)."""
    backbone: Backbone | None = None
    """A frozen part loaded from its own file before the checkpoint (None: the checkpoint has everything)."""
    checkpoint_module: str | None = None
    """Dotted name of the submodule a checkpoint holds (UnivFD: ``fc``); None: the whole model."""
    checkpoint_wrapper: str | None = None
    """The key the detector's official checkpoints keep the state dict under (CNNDetection and SAFE save
    ``{'model': state_dict}``); ``bench train`` writes its checkpoints the same way. None: a raw state dict."""
    imagenet_init: Callable[[nn.Module], Path] | None = None
    """``bench train --init imagenet``: loads ImageNet-pretrained weights from a local file into a freshly
    built model and returns the file's path (None: the detector has no such weights)."""
    train_loss: Callable[..., torch.Tensor] | None = None
    """The training loss, called as ``train_loss(output, target, masks=, has_mask=)`` with the model's
    training-mode output, the float labels [B] and, for runs that carry forgery masks, the masks
    [B, H, W] (bool) and which images have one [B] (bool; None when the run carries none). None: BCE-with-
    logits plus ``aux_loss_weight`` x the same on an auxiliary logit (LFM's loss)."""
    uses_masks: bool = False
    """``train_loss`` regularises with forgery masks (``bench train --mask-selection``)."""
    interpretation: str | None = None
    """Name of a model method ``(x [B, 3, H, W]) -> [B, H, W]`` giving the detector's own localisation map
    in [0, 1] (LAE's interpretation); None: none (Grad-CAM through ``cam_target_layer`` may stand in)."""
    description: str = ""
    reference: str = ""

    def build(self) -> nn.Module:
        return self.build_model().eval()
