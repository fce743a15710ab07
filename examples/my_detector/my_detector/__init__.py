"""A small detector registered with lfm-bench from outside its repository (docs/adding-a-detector.md)."""

from my_detector.detector import tiny_npr
from my_detector.model import TinyNPR

__all__ = ["TinyNPR", "tiny_npr"]
