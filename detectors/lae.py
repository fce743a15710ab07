"""LAE, the locality-aware autoencoder (Du et al., CIKM 2020): the model is `lae/`, this is its entry."""

from __future__ import annotations

from functools import partial

from detectors.base import Detector
from detectors.registry import register_detector
from lae import LAE, LAEConfig, lae_loss

LAE_REFERENCE = ("Towards Generalizable Deepfake Detection with Locality-aware AutoEncoder "
                 "(Du, Pentyala, Li, Hu; CIKM 2020; arXiv 1909.05999)")


def _train_loss(output, target, *, masks=None, has_mask=None, config: LAEConfig):
    return lae_loss(output, target, config, masks, has_mask)


@register_detector
def lae() -> Detector:
    config = LAEConfig()
    return Detector(
        name="lae",
        display_name="LAE",
        build_model=partial(LAE, config),
        weights_family="lae",
        default_weights=None,  # no official checkpoint was published; `lae:demo` is bundled
        train_lr=1e-3,  # a small autoencoder trained from scratch; the paper's value is not public
        cam_target_layer="encoder.latent",
        train_loss=partial(_train_loss, config=config),
        uses_masks=True,
        interpretation="interpret",
        description="locality-aware autoencoder: latent real/fake halves decide; interpretation map "
                    "regularised by forgery masks (bench train --mask-selection)",
        reference=LAE_REFERENCE,
    )
