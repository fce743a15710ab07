"""The one configuration object of the LAE model, and the one place where each open detail is decided.

LAE (Du, Pentyala, Li, Hu: "Towards Generalizable Deepfake Detection with Locality-aware AutoEncoder",
CIKM 2020, arXiv 1909.05999) is an autoencoder detector whose local interpretation is regularised by
pixel-wise forgery masks, with an active-learning loop that asks for masks of under 3% of the training
images. What the paper's public text fixes, and this package follows:
- an encoder-decoder; the latent code makes the real/fake decision; a reconstruction term keeps the
  code an autoencoder's;
- a classification term on the decision;
- an interpretation regulariser: an interpretation map of the decision is compared with the forgery mask
  on the (few) training images that have one;
- masks for a small budget of training images, chosen by active learning (bench.train.masks).

Open details, decided here (each is a field below; the reason is in its docstring):
- the latent split and the decision (`latent_channels`): the latent code has two halves, a "real" and a
  "fake" one; the decision's logit is the fake half's mean activation minus the real half's, the
  activation-based decision of ForensicTransfer (Cozzolino et al., arXiv 1812.02510), the autoencoder
  detector LAE builds on. A mean over positions makes the logit an exact sum of local contributions.
- the interpretation map: the per-position share of that logit, `fake_mean_c(h) - real_mean_c(h)` at
  each latent position, squashed by a sigmoid into [0, 1]. Because the decision is the spatial mean of
  these local logits, the map is exact (no gradient approximation); Grad-CAM on the latent layer gives
  the same map up to a constant, since the decision is linear in the latent. Shown at image size by
  bilinear up-sampling.
- the regulariser (`interpretation_weight`): per-position binary cross-entropy between the map and the
  mask's fraction of forged pixels in that latent cell. Its gradient at a position is map - mask: zero
  where they agree, and towards the mask where they differ, in both directions (unlike penalising only
  the map outside the mask).
- the sizes (`channels`, `latent_channels`): small enough to train on 2 CPU cores in minutes on the
  128x128 demo images; three stride-2 stages give an 8x-subsampled map (16x16 on 128x128).
- the loss weights: see `reconstruction_weight` and `interpretation_weight`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LAEConfig:
    channels: tuple[int, ...] = (16, 32, 64)
    """Widths of the encoder's stride-2 stages (the decoder mirrors them). Three stages: the map has one
    cell per 8x8 pixels, fine enough for regions of 6-35% of a 128x128 image. Narrow, so that a training
    epoch of the demo set takes minutes on 2 shared CPU cores."""
    latent_channels: int = 16
    """Channels per latent half (the code has 2x this: real half first, fake half second)."""
    reconstruction_weight: float = 0.1
    """Weight of the L1 reconstruction of the (normalised) input. The autoencoder's term keeps the latent
    a code of the whole image; a tenth keeps it from outweighing the decision, which is the aim. Not
    tuned."""
    interpretation_weight: float = 1.0
    """Weight of the interpretation regulariser, which is a mean over the batch's masked images (not over
    the whole batch), so that at a 3% budget (about one masked image per batch of 32) a mask still counts
    as much as the classification term does. Not tuned."""
    input: str = "residual"
    """What the encoder sees: `residual`, the image minus its nearest-neighbour 2x down-then-up copy (the
    NPR residual that NPR and LFM feed their networks: what an up-sampler's output cannot explain), or
    `rgb`, the normalised image. The residual, measured: on the demo local forgeries, RGB input had not
    started to separate them after a 3-epoch `bench train` run (val ACC 0.47, AP 0.54, active masks),
    and in a 40-step probe (batch 16, 96x96 crops, Adam 1e-3, seed 0; 150+150 demo-local-train images,
    120 demo-local-val) RGB reached val ACC 0.47 / AP 0.57 where the residual reached 0.79 / 0.93."""
    regularise_reals: bool = False
    """Also pull the map of real training images towards zero everywhere (their mask is all zero and needs
    no annotator). Off: the paper's budget is about human masks of fakes, and `none` must mean no
    interpretation term at all."""

    def __post_init__(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels) or self.latent_channels < 1:
            raise ValueError("LAEConfig: channels and latent_channels must be positive")
        if self.input not in ("residual", "rgb"):
            raise ValueError(f"LAEConfig.input={self.input!r}; expected residual or rgb")
        if self.reconstruction_weight < 0 or self.interpretation_weight < 0:
            raise ValueError("LAEConfig: loss weights must be at least 0")

    @property
    def stride(self) -> int:
        """Pixels per map cell along each side."""
        return 2 ** len(self.channels)
