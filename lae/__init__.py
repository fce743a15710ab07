"""The LAE model alone (pure PyTorch; imports nothing from the harness)."""

from lae.config import LAEConfig
from lae.model import LAE, LAEOutput, interpretation_loss, interpretation_map, lae_loss, mask_targets

__all__ = ["LAE", "LAEConfig", "LAEOutput", "interpretation_loss", "interpretation_map", "lae_loss", "mask_targets"]
