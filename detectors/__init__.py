"""The detector registry: name -> model builder + preprocessing + checkpoint loader + named weights."""

from detectors.base import IMAGENET_MEAN, IMAGENET_STD, Detector, Preprocessing
from detectors.checkpoints import CheckpointError, export_state_dict, read_state_dict
from detectors.loading import LoadedDetector, ResolvedWeights, load_detector, resolve_weights
from detectors.registry import get_detector, get_detectors, list_detectors, register_detector

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CheckpointError",
    "Detector",
    "LoadedDetector",
    "Preprocessing",
    "ResolvedWeights",
    "export_state_dict",
    "get_detector",
    "get_detectors",
    "list_detectors",
    "load_detector",
    "read_state_dict",
    "register_detector",
    "resolve_weights",
]
