"""The model and samples one assessment attacks, and how a curve point is scored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.assess.interface import CurvePoint
from bastion.models import Predictor

__all__ = ["Target", "point"]


@dataclass(frozen=True, eq=False)
class Target:
    """The model and the labelled samples every test of one assessment attacks."""

    predictor: Predictor
    """The model."""
    x: npt.NDArray[np.float32]
    """Inputs, exactly as the model takes them (float32)."""
    y: npt.NDArray[np.int64]
    """True class indices."""
    classes: tuple[str, ...]
    """Each class index's label, as text."""
    clip: tuple[float, float]
    """The inputs' valid range: every perturbed input is clipped to it."""
    seed: int = 0
    """Seed for the attacks' randomness."""
    keep_examples: bool = False
    """Keep the adversarial examples (for ``--save-adversarial``)."""

    @property
    def n_classes(self) -> int:
        """How many classes the model tells apart."""
        return len(self.classes)

    def correct(self, x: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """Which inputs the model classifies as their true class."""
        return np.asarray(self.predictor.predict(x) == self.y[:len(x)], dtype=np.bool_)


def point(target: Target, eps: float, correct: npt.NDArray[np.bool_],
          robust: npt.NDArray[np.bool_], queries: float | None = None) -> CurvePoint:
    """One curve point from which samples this ε's attack left correct (``correct``) and
    which every attack so far did (``robust``)."""
    y = target.y[:len(robust)]
    per_class = {target.classes[c]: float(robust[y == c].mean()) for c in np.unique(y)}
    return CurvePoint(eps=eps, accuracy=float(correct.mean()),
                      robust_accuracy=float(robust.mean()), per_class=per_class,
                      median_queries=queries)
