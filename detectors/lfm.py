"""LFM and its ablations. Their eval-mode forward is identical wherever the weights are shared; they
differ in training behaviour (regularisers) or in structure (pooling, K, input)."""

from __future__ import annotations

from functools import partial

from detectors.base import Detector
from detectors.registry import register_detector
from lfm import LFM, LFMConfig

LFM_REFERENCE = "A Novel Local Focusing Mechanism for Deepfake Detection Generalization (BMVC 2025)"

# The official checkpoint's names (networks/LFMSN.py) -> this package's names. `covn1_1` is the official
# spelling of the 1x1 reduction conv.
OFFICIAL_KEY_MAP = (
    ("downsample_conv.", "residual.down."),
    ("upsample_conv.", "residual.up."),
    ("cnn.", "salience."),
    ("covn1_1.", "reduce."),
    ("fc1.", "head."),
)


def _lfm_detector(name: str, display_name: str, config: LFMConfig, description: str, family: str | None = None,
                  reported_method: str | None = None):
    return Detector(
        name=name,
        display_name=display_name,
        build_model=partial(LFM, config),
        weights_family=family or name,
        default_weights="official" if (family or name) == "lfm" else None,
        key_map=OFFICIAL_KEY_MAP,
        aux_loss_weight=config.rks_loss_weight if config.rks else 0.0,
        train_lr=1e-4,  # the LFM README's training command
        reported_method=reported_method,
        # the Salience Network's last convolution before pooling, and the pooled vector the head reads
        cam_target_layer="reduce",
        feature_layer="pooled",
        description=description,
        reference=LFM_REFERENCE,
    )


@register_detector
def lfm() -> Detector:
    return _lfm_detector(
        "lfm", "LFM", LFMConfig(),
        "paper-faithful LFM: Top-K=16, Rank-Based Linear Dropout ramping 0.3..0.1 by rank, Random-K Sampling",
        reported_method="LFM",
    )


@register_detector
def lfm_official() -> Detector:
    config = LFMConfig(rbld="official", rks=False, rks_order="ascending", rks_loss_weight=0.0)
    return _lfm_detector(
        "lfm-official", "LFM (official code)", config,
        "the official code's behaviour: dropout p=0.1 at every rank, Random-K Sampling off",
        family="lfm", reported_method="LFM",
    )


# Train-only ablations: their eval-mode forward is LFM's, so LFM's weights would only reproduce LFM's
# numbers. They get a weights family of their own with no named weights: `bench train` makes theirs.
@register_detector
def lfm_no_rbld() -> Detector:
    return _lfm_detector(
        "lfm-no-rbld", "LFM w/o RBLD", LFMConfig(rbld="off"),
        "ablation, train-only: no Rank-Based Linear Dropout (no default weights: train it)",
    )


@register_detector
def lfm_no_rks() -> Detector:
    return _lfm_detector(
        "lfm-no-rks", "LFM w/o RKS", LFMConfig(rks=False),
        "ablation, train-only: no Random-K Sampling (no default weights: train it)",
    )


@register_detector
def lfm_gap() -> Detector:
    config = LFMConfig(pooling="gap", rbld="off", rks=False)
    return _lfm_detector("lfm-gap", "LFM w/ GAP", config, "ablation: global average pooling instead of Top-K")


@register_detector
def lfm_attention() -> Detector:
    config = LFMConfig(pooling="attention", rbld="off", rks=False)
    return _lfm_detector(
        "lfm-attention", "LFM w/ attention pooling", config, "ablation: learned spatial-softmax pooling instead of Top-K"
    )


@register_detector
def lfm_rgb() -> Detector:
    return _lfm_detector(
        "lfm-rgb", "LFM on RGB", LFMConfig(input="rgb"), "ablation: the Salience Network sees the image, not the NPR residual"
    )


@register_detector
def lfm_k1() -> Detector:
    return _lfm_detector("lfm-k1", "LFM (K=1)", LFMConfig(k=1), "ablation: Top-K with K=1 (max pooling)")


@register_detector
def lfm_k4() -> Detector:
    return _lfm_detector("lfm-k4", "LFM (K=4)", LFMConfig(k=4), "ablation: Top-K with K=4")


@register_detector
def lfm_k64() -> Detector:
    return _lfm_detector("lfm-k64", "LFM (K=64)", LFMConfig(k=64), "ablation: Top-K with K=64")
