"""Class-activation maps of a single-logit detector with pytorch-grad-cam.

The package computes the maps (Grad-CAM, Grad-CAM++, Score-CAM); this module only chooses the target: by
default the predicted class, i.e. the logit for an image called fake and minus the logit for one called
real (pytorch-grad-cam's ``BinaryClassifierOutputTarget``), as the paper's figure explains each
detector's own verdict. The maps come back at the input's size, min-max scaled to [0, 1] per image by the
package (``scale_cam_image``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bench.errors import BenchError

CAM_METHODS = ("gradcam", "gradcam++", "scorecam")
CAM_TARGETS = ("predicted", "fake", "real")


def _cam_class(method: str):
    # pytorch_grad_cam imports cv2, scipy and pyplot: seconds, so only when maps are asked for
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM

    classes = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM}
    if method not in classes:
        raise BenchError(f"unknown CAM method {method!r}; choose one of {', '.join(CAM_METHODS)}")
    return classes[method]


@dataclass
class CamResult:
    maps: np.ndarray
    """float32 [B, H, W] in [0, 1], at the input's size."""
    logits: np.ndarray
    """float32 [B]: the model's logits for the same inputs (positive = fake)."""
    explained: np.ndarray
    """int [B]: the class each map explains (1 = fake, 0 = real)."""


def class_activation_maps(
    model: nn.Module, target_layer: nn.Module, inputs: torch.Tensor, *, method: str = "gradcam",
    target: str = "predicted", batch_size: int = 16,
) -> CamResult:
    """Maps of ``model`` (normalised float [B, 3, H, W] -> logits [B]) at ``target_layer``.

    The model must be the plain eval-mode model (gradients flow through it; BatchNorm folding or
    inference mode would not change the map but would stop the backward pass)."""
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

    if target not in CAM_TARGETS:
        raise BenchError(f"unknown CAM target {target!r}; choose one of {', '.join(CAM_TARGETS)}")
    cam_class = _cam_class(method)
    model.eval()
    with torch.inference_mode(False), torch.no_grad():
        logits = model(inputs.clone()).float().reshape(-1)
    if target == "predicted":
        explained = (logits > 0).long()
    else:
        explained = torch.full_like(logits, int(target == "fake"), dtype=torch.long)
    cam = cam_class(model=model, target_layers=[target_layer])
    if method == "scorecam":
        cam.batch_size = batch_size  # masked copies of the input scored per forward pass
    try:
        with torch.inference_mode(False), torch.enable_grad():
            # an input that needs grad keeps the graph alive even when every parameter is frozen
            x = inputs.detach().clone().requires_grad_(True)
            maps = cam(input_tensor=x, targets=[BinaryClassifierOutputTarget(int(c)) for c in explained])
    finally:
        # not `with cam:`: its __exit__ swallows IndexError
        cam.activations_and_grads.release()
    return CamResult(np.asarray(maps, dtype=np.float32), logits.numpy(), explained.numpy())
