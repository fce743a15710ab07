"""Detector + weights -> a model ready to score, with the weights' identity recorded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from bench.errors import BenchError
from detectors.base import Detector, Preprocessing
from detectors.checkpoints import load_state_dict_strict, read_state_dict
from detectors.registry import get_detector
from detectors.weights import all_weights, get_weights_entry, local_path, require_local, sha256_of, verify


@dataclass(frozen=True)
class ResolvedWeights:
    name: str | None
    """``family:tag`` for named weights, None for a file given by path."""
    path: Path
    sha256: str
    preprocessing: Preprocessing | None = None
    """The weights' own preprocessing when it differs from the detector's (e.g. a checkpoint trained
    with other normalisation statistics); None: the detector's."""

    @property
    def label(self) -> str:
        return self.name or str(self.path)


@dataclass
class LoadedDetector:
    detector: Detector
    model: nn.Module
    weights: ResolvedWeights
    fingerprint: str | None = None
    """Set by the runner: a hash of the model's outputs on a fixed probe (see bench.engine.runner)."""
    backbone: ResolvedWeights | None = None
    """The frozen backbone's file, for detectors that load one apart from their checkpoint (UnivFD)."""

    @property
    def preprocessing(self) -> Preprocessing:
        """What scoring, training, explanations and profiling feed this model: the weights' own
        preprocessing where the weights entry declares one, else the detector's."""
        own = None if self.weights is None else self.weights.preprocessing  # no weights: a model built in code
        return own or self.detector.preprocessing


def weights_name_for(detector: Detector, spec: str) -> str:
    """``official`` -> ``lfm:official`` for detectors of the lfm family; full names pass through."""
    return spec if ":" in spec else f"{detector.weights_family}:{spec}"


def resolve_weights(detector: Detector, spec: str | None) -> ResolvedWeights:
    """``--weights`` value (a path, a full name, a tag, or None for the default) -> a verified local file.

    Named weights that are not on this machine are an error with the fetch command; nothing is
    downloaded implicitly here (``bench weights fetch`` does that)."""
    if spec is None:
        if detector.default_weights is None:
            raise BenchError(_no_weights_message(detector))
        spec = detector.default_weights
    as_path = Path(spec).expanduser()
    if as_path.is_file():
        sha256 = sha256_of(as_path)
        # a local copy of a registered file keeps its name, so results stay comparable across machines
        known = next((e for e in all_weights() if e.sha256 == sha256), None)
        return ResolvedWeights(name=known.name if known else None, path=as_path.resolve(), sha256=sha256,
                               preprocessing=known.preprocessing if known else None)
    if ("/" in spec or spec.endswith((".pth", ".pt", ".ckpt"))) and ":" not in spec:
        raise BenchError(f"weights file {spec} does not exist")
    name = weights_name_for(detector, spec)
    if ":" not in spec and detector.default_weights is None and name not in {e.name for e in all_weights()}:
        # a family tag (e.g. the demo suites' implied `demo`) this detector has no weights for
        raise BenchError(_no_weights_message(detector, spec))
    entry = get_weights_entry(name)
    if entry.family != detector.weights_family:
        raise BenchError(
            f"weights {entry.name} belong to the {entry.family!r} family, not to detector {detector.name!r} "
            f"(family {detector.weights_family!r})"
            + (f". {_no_weights_message(detector)}" if detector.default_weights is None else "")
        )
    path = local_path(entry)
    if path is None:
        raise BenchError(
            f"weights {entry.name} are not on this machine. Run `bench weights fetch {entry.name}` "
            f"(downloads {entry.url}), or put {entry.filename} in a folder and set BENCH_WEIGHTS_DIR to it"
            + (f" ({entry.note})." if entry.note else ".")
        )
    return ResolvedWeights(name=entry.name, path=path, sha256=verify(entry, path), preprocessing=entry.preprocessing)


def _no_weights_message(detector: Detector, tag: str | None = None) -> str:
    available = [e.name for e in all_weights() if e.family == detector.weights_family]
    which = f"no {tag!r} weights" if tag else "no default weights"
    train_set = "demo" if tag == "demo" else "progan4"
    return (
        f"detector {detector.name!r} has {which}"
        + (f" (its weights: {', '.join(available)})" if available else " and no named weights")
        + f". Train them: `bench train --detector {detector.name} --train-set {train_set}`, then pass "
        "--weights <its run folder>/last.pth"
        + (" (or --weights NAME|PATH)." if available else ".")
    )


def locate_backbone(detector: Detector) -> ResolvedWeights | None:
    """The verified file of the detector's frozen backbone (exit 2 naming the expected path when it is not
    on this machine); None for detectors without one. Called before the model is built: failing is fast."""
    if detector.backbone is None:
        return None
    entry = get_weights_entry(detector.backbone.weights)
    path = require_local(entry, f"detector {detector.name!r}")  # verified against a pinned sha256
    return ResolvedWeights(name=entry.name, path=path.resolve(), sha256=entry.sha256 or sha256_of(path))


def load_backbone(detector: Detector, model: nn.Module, located: ResolvedWeights | None = None) -> ResolvedWeights | None:
    """Fill the detector's frozen backbone from its own file; None for detectors without one."""
    located = located or locate_backbone(detector)
    if located is not None:
        detector.backbone.load(model, located.path)
    return located


def checkpoint_target(detector: Detector, model: nn.Module) -> nn.Module:
    """The module a checkpoint of the detector holds: the whole model, or its ``checkpoint_module``."""
    return model.get_submodule(detector.checkpoint_module) if detector.checkpoint_module else model


def load_detector(name_or_detector: str | Detector, weights: str | None = None) -> LoadedDetector:
    """Build the detector and load its weights strictly. Never returns a randomly initialised model:
    a detector with a frozen backbone gets it from its own file first, then the checkpoint fills the rest."""
    detector = get_detector(name_or_detector) if isinstance(name_or_detector, str) else name_or_detector
    resolved = resolve_weights(detector, weights)
    backbone = locate_backbone(detector)
    model = detector.build_model()
    load_backbone(detector, model, backbone)
    load_state_dict_strict(checkpoint_target(detector, model), read_state_dict(resolved.path), detector, resolved.path)
    return LoadedDetector(detector=detector, model=model.eval(), weights=resolved, backbone=backbone)
