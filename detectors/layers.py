"""The layers a detector declares for explanations: its Grad-CAM target and its feature hook.

A detector names two modules by their dotted path in the model (``Detector.cam_target_layer`` and
``Detector.feature_layer``); nothing else in the harness knows a model's inside. ``bench explain`` hands
the target module to pytorch-grad-cam; ``bench embed`` reads the pooled vector that feeds the head with
:class:`FeatureTap`, a forward hook that keeps the module's output flattened to [B, D].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bench.errors import BenchError, did_you_mean
from detectors.base import Detector


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule at a dotted path (``net.layer4``), or a BenchError naming close matches."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        close = did_you_mean(name, [n for n in modules if n])
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise BenchError(f"{type(model).__name__} has no module {name!r}.{hint}")
    return modules[name]


def cam_target(detector: Detector, model: nn.Module) -> nn.Module:
    if not detector.cam_target_layer:
        raise BenchError(
            f"detector {detector.name!r} declares no Grad-CAM target layer; set cam_target_layer in its "
            "registry entry to the dotted name of its last convolutional stage"
        )
    return get_layer(model, detector.cam_target_layer)


def feature_module(detector: Detector, model: nn.Module) -> nn.Module:
    if not detector.feature_layer:
        raise BenchError(
            f"detector {detector.name!r} declares no feature layer; set feature_layer in its registry entry "
            "to the dotted name of the module whose output is the pooled vector that feeds its head"
        )
    return get_layer(model, detector.feature_layer)


class FeatureTap:
    """A forward hook on one module that collects its outputs as [B, D] (detached, float32).

    Used as a context manager, so the hook never outlives its use; outputs of several forward passes
    inside it (a scorer that splits a batch into micro-batches) are concatenated in order::

        with FeatureTap(feature_module(detector, model)) as tap:
            model(x)
        features = tap.features
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self._outputs: list[torch.Tensor] = []
        self._handle = None

    def _hook(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        self._outputs.append(output.detach().float().flatten(1))

    @property
    def features(self) -> torch.Tensor | None:
        return torch.cat(self._outputs) if self._outputs else None

    def __enter__(self) -> FeatureTap:
        self._outputs = []
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def logits_and_features(
    detector: Detector, scorer: Callable[[torch.Tensor], torch.Tensor], model: nn.Module
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap a logit scorer into one that returns [B, 1 + D]: each image's logit, then the declared feature
    vector its head read in that same forward pass (how the runner caches features beside scores)."""
    module = feature_module(detector, model)

    def both(pixels: torch.Tensor) -> torch.Tensor:
        with FeatureTap(module) as tap:
            logits = scorer(pixels)
        found = tap.features
        if found is None or len(found) != len(pixels):
            raise BenchError(
                f"{detector.name}: its feature layer {detector.feature_layer!r} gave "
                f"{0 if found is None else len(found)} vectors for {len(pixels)} images"
            )
        return torch.cat([logits.float().reshape(-1, 1), found], dim=1)

    return both
