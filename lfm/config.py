"""The one configuration object of the LFM model; every ablation is a different value of it."""

from __future__ import annotations

from dataclasses import dataclass

POOLINGS = ("topk", "gap", "attention")
INPUTS = ("residual", "rgb")
RBLD_MODES = ("paper", "official", "off")
RKS_ORDERS = ("descending", "ascending")


@dataclass(frozen=True)
class LFMConfig:
    k: int = 16
    """Top-K values kept per channel (paper: 16)."""
    pooling: str = "topk"
    """``topk`` (LFM), ``gap`` (global average pooling) or ``attention`` (learned spatial softmax)."""
    input: str = "residual"
    """``residual`` (|NPR residual|, LFM) or ``rgb`` (the normalised image itself)."""
    rbld: str = "paper"
    """Rank-Based Linear Dropout: ``paper`` (p ramps p_max..p_min by rank), ``official`` (constant p_min), ``off``."""
    p_min: float = 0.1
    p_max: float = 0.3
    rks: bool = True
    """Random-K Sampling: an auxiliary logit from K random values per channel, training only."""
    rks_order: str = "descending"
    """Sort order of the sampled values. The official code sorts them ascending although its Top-K vector
    is descending; ``descending`` lines the sampled values up rank for rank with the Top-K vector that
    shares the head, which is what the paper's Algorithm 1 does (both vectors in one order)."""
    rks_loss_weight: float = 0.02
    """Weight of the auxiliary BCE term. 0.02 is the official code's ``get_loss``; its training step uses 0."""
    salience_channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    map_channels: int = 64

    def __post_init__(self) -> None:
        for field, value, allowed in (
            ("pooling", self.pooling, POOLINGS),
            ("input", self.input, INPUTS),
            ("rbld", self.rbld, RBLD_MODES),
            ("rks_order", self.rks_order, RKS_ORDERS),
        ):
            if value not in allowed:
                raise ValueError(f"LFMConfig.{field}={value!r}; expected one of {', '.join(allowed)}")
        if self.k < 1:
            raise ValueError(f"LFMConfig.k must be >= 1, got {self.k}")
        if self.rks and self.pooling != "topk":
            raise ValueError("Random-K Sampling only makes sense with Top-K pooling (pooling='topk')")

    @property
    def feature_dim(self) -> int:
        """Length of the vector the linear head sees."""
        return self.map_channels * self.k if self.pooling == "topk" else self.map_channels
