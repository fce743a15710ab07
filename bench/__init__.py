"""lfm-bench: evaluate, train, profile and tabulate AI-generated-image detectors under one protocol."""

__version__ = "0.1.0"
