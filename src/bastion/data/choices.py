"""Choices the data commands take, kept free of heavy imports so the CLI starts fast."""

from __future__ import annotations

import enum

__all__ = ["Method", "Task"]


class Task(enum.StrEnum):
    """What the model is for; decides which rule of thumb applies."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    VISION = "vision"


class Method(enum.StrEnum):
    """Which detector decides what is suspicious."""

    AUTO = "auto"
    """Model-free: trigger search for arrays and images, per-class outliers for tables."""
    TRIGGER = "trigger"
    """Model-free search for a shared patch trigger (BadNets)."""
    SPECTRAL = "spectral"
    """Spectral signatures alone: flags scores far above the class's bulk."""
    CLUSTERING = "clustering"
    """Activation clustering alone."""
    OUTLIERS = "outliers"
    """Model-free per-class outliers on the raw features."""
