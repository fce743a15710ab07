"""LFM: the Local Focusing Mechanism detector (BMVC 2025), read top to bottom.

    image -> NPR residual -> |.| -> Salience Network -> 1x1 conv (512 -> 64)
          -> Top-K pooling per channel (+ Rank-Based Linear Dropout while training) -> linear head -> logit
                                      \\-> Random-K Sampling (training only) -> same head -> auxiliary logit

Facts about the official code (github.com/lmlpy/LFM, networks/LFMSN.py) that this file follows:
- the residual is computed with two frozen 2x2 convolutions: "down" keeps the top-left pixel of each 2x2
  block, "up" repeats it over the block; LFM feeds ``abs(x - up(down(x)))`` to the Salience Network (no
  2/3 scale, unlike NPR's own ResNet);
- the Salience Network is 4 x [Conv2d(k=2, pad=0) + BatchNorm + ReLU] with 2x2 max-pooling after the first
  three; a bias-free 1x1 convolution reduces 512 channels to 64;
- Top-K values are taken per channel in descending order and flattened channel-major (64 x 16 = 1024).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lfm.config import LFMConfig


def canonical_kernels() -> tuple[torch.Tensor, torch.Tensor]:
    """The official frozen kernels: ``down`` keeps channel c's top-left pixel, ``up`` repeats it 2x2."""
    eye = torch.eye(3)
    down = torch.zeros(3, 3, 2, 2)
    down[:, :, 0, 0] = eye
    up = eye[:, :, None, None].expand(3, 3, 2, 2).clone()
    return down, up


class NPRResidual(nn.Module):
    """``x - up(down(x))``: what nearest-neighbour up-sampling cannot explain.

    Kept as the official pair of frozen 2x2 convolutions so that the official checkpoint (which stores
    both kernels) loads strictly and the parameter count matches the paper's 725,641. Inference paths may
    swap this module for :class:`SlicedNPRResidual`, which gives the same numbers without convolutions.
    """

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 3, kernel_size=2, stride=2, bias=False)
        self.up = nn.ConvTranspose2d(3, 3, kernel_size=2, stride=2, bias=False)
        self.reset_kernels()
        self.down.weight.requires_grad_(False)
        self.up.weight.requires_grad_(False)

    @torch.no_grad()
    def reset_kernels(self) -> None:
        down, up = canonical_kernels()
        self.down.weight.copy_(down)
        self.up.weight.copy_(up)

    def has_canonical_kernels(self) -> bool:
        down, up = canonical_kernels()
        return torch.equal(self.down.weight.detach().cpu(), down) and torch.equal(self.up.weight.detach().cpu(), up)

    def inference_equivalent(self) -> nn.Module:
        """The module an eval-only path may put in this one's place (see bench.engine.inference): the sliced
        residual when the kernels are the official ones (it computes the same numbers without convolutions),
        else this module itself."""
        return SlicedNPRResidual() if self.has_canonical_kernels() else self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_even_size(x)
        return x - self.up(self.down(x))


class SlicedNPRResidual(nn.Module):
    """The same residual by tensor slicing: top-left pixel of each 2x2 block, broadcast back over it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_even_size(x)
        b, c, h, w = x.shape
        blocks = x.reshape(b, c, h // 2, 2, w // 2, 2)
        return (blocks - blocks[:, :, :, :1, :, :1]).reshape(b, c, h, w)


def check_even_size(x: torch.Tensor) -> None:
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(
            f"the NPR residual needs even height and width, got {tuple(x.shape[-2:])}; "
            "crop the image to even size first (bench does this and records it)"
        )


def salience_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # index layout (0 conv, 1 bn, 2 relu) is the official checkpoint's `cnn.layerN.{0,1}` layout
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=2, padding=0),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SalienceNetwork(nn.Module):
    """Four 2x2 conv blocks, max-pooled after the first three: a shallow net with a small receptive field,
    so that it scores local artefacts rather than image semantics."""

    def __init__(self, channels: tuple[int, ...] = (64, 128, 256, 512), in_channels: int = 3) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.layer1 = salience_block(in_channels, c1)
        self.layer2 = salience_block(c1, c2)
        self.layer3 = salience_block(c2, c3)
        self.layer4 = salience_block(c3, c4)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layer1(x))
        x = self.pool(self.layer2(x))
        x = self.pool(self.layer3(x))
        return self.layer4(x)


def top_k_per_channel(maps: torch.Tensor, k: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, k]: each channel's k largest values, largest first."""
    flat = maps.flatten(2)
    if flat.shape[-1] < k:
        raise ValueError(f"Top-K pooling with K={k} needs at least {k} positions, the map has {flat.shape[-1]}")
    return flat.topk(k, dim=-1, largest=True, sorted=True).values


class RankBasedLinearDropout(nn.Module):
    """Dropout whose probability depends on a value's rank within its channel's Top-K.

    Input: [B, C, K] sorted in descending order (rank 0 = the channel's strongest response).

    ``mode="paper"`` (Algorithm 1 of the paper): the probability ramps linearly from ``p_max`` at rank 0
    down to ``p_min`` at rank K-1. The strongest responses get ``p_max`` because the point of the regulariser
    is to stop the classifier from leaning on a few dominant activations (the paper: "linearly increasing
    dropout probabilities to top-ranked activations"); in Algorithm 1 the values are indexed in ascending
    order, so the last (largest) index gets the largest probability.

    ``mode="official"``: what the official code really runs: ``linspace(p_min, p_min, K)``, i.e. every rank
    gets ``p_min``, which is plain dropout.

    Both keep the expectation of every value by dividing the kept ones by ``1 - p``. Identity in eval mode.
    """

    def __init__(self, mode: str = "paper", p_min: float = 0.1, p_max: float = 0.3) -> None:
        super().__init__()
        if mode not in ("paper", "official"):
            raise ValueError(f"unknown RBLD mode {mode!r}; expected 'paper' or 'official'")
        if not 0.0 <= p_min <= p_max < 1.0:
            raise ValueError(f"need 0 <= p_min <= p_max < 1, got p_min={p_min}, p_max={p_max}")
        self.mode = mode
        self.p_min = p_min
        self.p_max = p_max

    def drop_probabilities(self, k: int, device: torch.device | None = None) -> torch.Tensor:
        """Drop probability of each rank, rank 0 (largest value) first."""
        if self.mode == "official":
            return torch.full((k,), self.p_min, device=device)
        return torch.linspace(self.p_max, self.p_min, k, device=device)

    def forward(self, ranked: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return ranked
        p = self.drop_probabilities(ranked.shape[-1], ranked.device).to(ranked.dtype)
        keep = torch.rand_like(ranked) >= p
        return ranked * keep / (1.0 - p)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, p_min={self.p_min}, p_max={self.p_max}"


def random_k_per_channel(maps: torch.Tensor, k: int, descending: bool = True) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, k]: k values per channel drawn without replacement, then sorted.

    Plain autograd through ``gather`` sends the gradient to exactly the sampled positions.
    """
    flat = maps.flatten(2)
    if flat.shape[-1] < k:
        raise ValueError(f"Random-K sampling with K={k} needs at least {k} positions, the map has {flat.shape[-1]}")
    # the k largest of i.i.d. uniform keys are a uniform sample of k distinct positions
    positions = torch.rand(flat.shape, device=flat.device).topk(k, dim=-1).indices
    sampled = flat.gather(-1, positions)
    return sampled.sort(dim=-1, descending=descending).values


class AttentionPooling(nn.Module):
    """Ablation: a learned spatial softmax over all H x W positions instead of Top-K."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Conv2d(channels, channels // 8, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // 8, 1, kernel_size=1),
        )

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        weights = self.score(maps).flatten(2).softmax(dim=-1)  # [B, 1, HW]
        return (maps.flatten(2) * weights).sum(-1)  # [B, C]


class LFM(nn.Module):
    """The LFM detector. ``forward`` returns logits of shape [B] (positive = generated).

    In training mode with Random-K Sampling on, it returns ``(logits, auxiliary_logits)``; the auxiliary
    logits come from K randomly sampled values per channel through the same head.
    """

    def __init__(self, config: LFMConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or LFMConfig()
        self.residual = NPRResidual() if config.input == "residual" else None
        self.salience = SalienceNetwork(config.salience_channels)
        self.reduce = nn.Conv2d(config.salience_channels[-1], config.map_channels, kernel_size=1, bias=False)
        self.dropout = (
            RankBasedLinearDropout(config.rbld, config.p_min, config.p_max)
            if config.pooling == "topk" and config.rbld != "off"
            else None
        )
        self.attention = AttentionPooling(config.map_channels) if config.pooling == "attention" else None
        # no-op marking the pooled vector that feeds the head, so a forward hook can read it (bench embed);
        # it holds no state, so checkpoint keys and outputs are unchanged
        self.pooled = nn.Identity()
        self.head = nn.Linear(config.feature_dim, 1)

    def salience_maps(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] normalised image -> [B, 64, h, w] salience maps (before pooling)."""
        if self.residual is not None:
            x = self.residual(x).abs()
        return self.reduce(self.salience(x))

    def pool(self, maps: torch.Tensor) -> torch.Tensor:
        pooling = self.config.pooling
        if pooling == "topk":
            ranked = top_k_per_channel(maps, self.config.k)
            if self.dropout is not None:
                ranked = self.dropout(ranked)
            return ranked.flatten(1)
        if pooling == "gap":
            return maps.mean(dim=(2, 3))
        return self.attention(maps)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        maps = self.salience_maps(x)
        logits = self.head(self.pooled(self.pool(maps))).squeeze(1)
        if self.training and self.config.rks:
            sampled = random_k_per_channel(maps, self.config.k, descending=self.config.rks_order == "descending")
            return logits, self.head(sampled.flatten(1)).squeeze(1)
        return logits


def lfm_loss(
    output: torch.Tensor | tuple[torch.Tensor, torch.Tensor], target: torch.Tensor, aux_weight: float
) -> torch.Tensor:
    """BCE-with-logits on the main logits, plus ``aux_weight`` x the same on the Random-K logits."""
    if isinstance(output, tuple):
        main, aux = output
        loss = F.binary_cross_entropy_with_logits(main, target)
        if aux_weight:
            loss = loss + aux_weight * F.binary_cross_entropy_with_logits(aux, target)
        return loss
    return F.binary_cross_entropy_with_logits(output, target)
