"""UnivFD (Ojha, Li and Lee, "Towards Universal Fake Image Detectors that Generalize Across Generative
Models", CVPR 2023): the frozen image encoder of OpenAI's CLIP ViT-L/14 and one Linear(768, 1) on its
768-d image embedding.

Facts from the official code (github.com/WisconsinAIVision/UniversalFakeDetect):
- ``models/clip_models.py``: ``clip.load("ViT-L/14", device="cpu")`` (float32), ``fc = nn.Linear(768, 1)``,
  ``forward = fc(model.encode_image(x))``; ``encode_image`` is the visual tower: patch conv, class token,
  position embedding, ln_pre, 24 residual blocks (QuickGELU MLPs), ln_post on the class token, ``@ proj``.
- ``validate.py``: the checkpoint ``pretrained_weights/fc_weights.pth`` is the head's state dict
  (``weight`` [1, 768], ``bias`` [1]) loaded with ``model.fc.load_state_dict``; test images go through
  ``CenterCrop(224)`` (no resize), ``ToTensor`` and CLIP's mean/std.
The CLIP file (``ViT-L-14.pt``, a TorchScript archive, or a plain state dict of the full CLIP model) is
loaded from ``$BENCH_WEIGHTS_DIR`` or the cache, checked against the sha256 in OpenAI's download URL.
Under the paper's protocol (Resize((256, 256))) the model still needs 224x224: a centre crop follows.
"""

from __future__ import annotations

import logging
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from detectors.base import Backbone, Detector, Preprocessing
from detectors.checkpoints import CheckpointError
from detectors.registry import register_detector

logger = logging.getLogger(__name__)

# OpenAI CLIP's normalisation (clip/clip.py _transform; UnivFD validate.py MEAN/STD["clip"])
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# ViT-L/14 at 224: what clip.model.build_model reads from the OpenAI state dict
VIT_L_14 = {"image_size": 224, "patch_size": 14, "width": 1024, "layers": 24, "heads": 16, "mlp_ratio": 4.0,
            "output_dim": 768}
UNIVFD_REFERENCE = ("Towards Universal Fake Image Detectors that Generalize Across Generative Models "
                    "(Ojha, Li and Lee, CVPR 2023)")


def clip_visual() -> nn.Module:
    """OpenAI CLIP ViT-L/14's image encoder (random weights), with OpenAI's module names and QuickGELU."""
    from open_clip.transformer import QuickGELU, VisionTransformer

    return VisionTransformer(**VIT_L_14, act_layer=QuickGELU)


class UnivFDNet(nn.Module):
    """``visual`` (frozen CLIP image encoder, eval mode always) -> ``fc`` Linear(768, 1) -> logits [B]."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = clip_visual()
        self.fc = nn.Linear(VIT_L_14["output_dim"], 1)
        self.visual.requires_grad_(False)

    def train(self, mode: bool = True) -> UnivFDNet:
        super().train(mode)
        self.visual.eval()  # a linear probe: the backbone never switches to training behaviour
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.visual(x)).squeeze(1)


def read_openai_clip(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``visual.*`` weights of an OpenAI CLIP file, without the prefix, as float32.

    OpenAI's files are TorchScript archives, which ``torch.load(weights_only=True)`` cannot read; they are
    read with ``torch.jit.load`` (TorchScript deserialisation runs no pickled Python) after the caller has
    checked the file's sha256. A plain state dict of the CLIP model is read with ``weights_only=True``."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch.jit.load is deprecated for new code; OpenAI's files need it
            warnings.simplefilter("ignore", FutureWarning)
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
    except RuntimeError:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, OSError, ValueError) as error:
            raise CheckpointError(
                f"cannot read {path} as OpenAI's CLIP ViT-L/14 (neither a TorchScript archive nor a state dict: "
                f"{type(error).__name__}). Re-download ViT-L-14.pt."
            ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not CLIP weights")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k[len("visual."):]: v.float() for k, v in state.items() if k.startswith("visual.")}


def load_clip_backbone(model: nn.Module, path: Path) -> None:
    """Fill ``model.visual`` strictly from an OpenAI CLIP ViT-L/14 file."""
    from detectors.checkpoints import load_state_dict_strict

    visual = read_openai_clip(path)
    if not visual:
        raise CheckpointError(f"{path} has no visual.* weights: it is not a CLIP model file")
    probe = Detector(name="clip:ViT-L-14", display_name="CLIP ViT-L/14", build_model=clip_visual, weights_family="clip")
    load_state_dict_strict(model.visual, visual, probe, path)
    logger.info("CLIP ViT-L/14 image encoder loaded from %s", path)


@register_detector
def univfd() -> Detector:
    return Detector(
        name="univfd",
        display_name="UnivFD",
        build_model=UnivFDNet,
        weights_family="univfd",
        default_weights="official",
        preprocessing=Preprocessing(
            mean=CLIP_MEAN, std=CLIP_STD, interpolation="bilinear", even_crop=False,
            own_resize=None, own_crop=224, input_size=224,
        ),
        backbone=Backbone(weights="clip:ViT-L-14", load=load_clip_backbone),
        checkpoint_module="fc",
        train_lr=1e-4,  # UnivFD's train_options.py: Adam, lr 1e-4
        cam_target_layer="visual.conv1",  # the patch embedding: the last spatial map of a ViT (16 x 16 patches)
        feature_layer="visual",  # the 768-d CLIP image embedding fc reads
        reported_method="Ojha",
        description="UnivFD: frozen CLIP ViT-L/14 image features + Linear(768, 1) (needs ViT-L-14.pt)",
        reference=UNIVFD_REFERENCE,
    )
