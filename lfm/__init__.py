"""The LFM model alone (pure PyTorch; imports nothing from the harness)."""

from lfm.config import LFMConfig
from lfm.model import (
    LFM,
    NPRResidual,
    RankBasedLinearDropout,
    SalienceNetwork,
    SlicedNPRResidual,
    lfm_loss,
    random_k_per_channel,
    top_k_per_channel,
)

__all__ = [
    "LFM",
    "LFMConfig",
    "NPRResidual",
    "RankBasedLinearDropout",
    "SalienceNetwork",
    "SlicedNPRResidual",
    "lfm_loss",
    "random_k_per_channel",
    "top_k_per_channel",
]
