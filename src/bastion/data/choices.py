"""Choices the data commands take, kept free of heavy imports so the CLI starts fast."""

from __future__ import annotations

import enum

__all__ = ["Layout", "Method", "Task"]


class Task(enum.StrEnum):
    """What the model is for; decides which rule of thumb applies."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    VISION = "vision"


class Method(enum.StrEnum):
    """Which detector decides what is suspicious."""

    AUTO = "auto"
    """With a model: ``combined``. Without: trigger search for arrays and images, per-class
    outliers for tables."""
    COMBINED = "combined"
    """Needs a model: content mismatch and trigger persistence, pooled over each sample's
    group in the model's representation space, split per class."""
    TRIGGER = "trigger"
    """Model-free search for a shared patch trigger (BadNets)."""
    SPECTRAL = "spectral"
    """Spectral signatures alone: flags scores far above the class's bulk."""
    CLUSTERING = "clustering"
    """Activation clustering alone."""
    OUTLIERS = "outliers"
    """Model-free per-class outliers on the raw features."""


class Layout(enum.StrEnum):
    """How a 4-D image array's axes are ordered. Stored images are always ``(n, h, w, c)``."""

    AUTO = "auto"
    """Inferred: a channel axis of size 1, 3 or 4 on exactly one side; else the model's first
    layer decides; else an error asks for ``nchw`` or ``nhwc``."""
    NCHW = "nchw"
    """``(n, channels, height, width)``: PyTorch's order."""
    NHWC = "nhwc"
    """``(n, height, width, channels)``: TensorFlow's, Pillow's and NumPy image order."""
