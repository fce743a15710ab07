"""The declaration lfm-bench reads: how to build the model, how to feed it, where its weights come from,
which layers explanations use and which paper row it is compared with. The entry point in pyproject.toml
names `tiny_npr`."""

from __future__ import annotations

from detectors.base import IMAGENET_MEAN, IMAGENET_STD, Detector, Preprocessing
from my_detector.model import TinyNPR


def tiny_npr() -> Detector:
    return Detector(
        name="tiny-npr",  # must equal the entry point's name
        display_name="Tiny NPR",
        build_model=TinyNPR,  # a zero-argument callable returning the nn.Module (random weights)
        # no named weights: `bench run` asks for a checkpoint (`--weights PATH`), which `bench train` makes
        weights_family="tiny-npr",
        default_weights=None,
        # how decoded uint8 RGB pixels become the model's input; the suite's protocol decides the size
        preprocessing=Preprocessing(
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            interpolation="bilinear",  # the PIL filter of every resize
            even_crop=True,  # the NPR residual needs even sizes: odd native sizes lose a row/column
        ),
        train_lr=1e-2,  # `bench train`'s default lr: a 233-parameter model takes larger steps than NPR (2e-4)
        cam_target_layer="conv",  # `bench explain` and localisation: Grad-CAM on this module's output
        feature_layer="pool",  # `bench embed`: the pooled vector the head reads
        reported_method="NPR",  # `bench table --compare`: the paper row its reproduced rows sit beside
        description="NPR residual -> one 3x3 conv -> ReLU -> global average pool -> linear (a worked example)",
        reference="docs/adding-a-detector.md",
    )
