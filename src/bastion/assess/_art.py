"""The seam between Bastion's predictors and IBM ART (Adversarial Robustness Toolbox).

White-box attacks get ART's ``PyTorchClassifier`` around the network behind a
:class:`~bastion.models.TorchPredictor` (its scores turned into logits whatever the network
ends in); black-box attacks get a ``BlackBoxClassifier`` around ``predict_proba`` only, fed
float32 (HopSkipJump mixes float64 into float32 arrays under NumPy 2 otherwise), through a
:class:`QueryBudget` that counts every row the attack asks about, remembers the closest
misclassified one, and stops the attack when its queries are spent.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bastion.assess.interface import AssessError, Norm
from bastion.models import Output, Predictor
from bastion.models.interface import CapabilityError

__all__ = ["BudgetSpent", "QueryBudget", "as_image", "black_box", "require_art", "seed_all",
           "white_box"]

Array = npt.NDArray[Any]
_MIN_SIDE: Final = 3
"""Square's patches need an image at least this many pixels wide."""


def require_art() -> None:
    """Fail with an install hint when ART is missing (a broken or partial install)."""
    try:
        import art  # noqa: F401
    except ImportError:
        raise AssessError("evasion tests need the Adversarial Robustness Toolbox",
                          hint="pip install adversarial-robustness-toolbox") from None


def seed_all(seed: int) -> None:
    """Seed every source of randomness the attacks draw on: Python's, NumPy's global state
    (ART uses it throughout) and PyTorch's, when it is loaded."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def norm_of(delta: Array, norm: Norm) -> npt.NDArray[np.float64]:
    """Each row's size in ``norm``."""
    flat = np.asarray(delta, dtype=np.float64).reshape(len(delta), -1)
    if norm is Norm.LINF:
        return np.asarray(np.abs(flat).max(axis=1, initial=0.0), dtype=np.float64)
    return np.asarray(np.linalg.norm(flat, axis=1), dtype=np.float64)


def art_norm(norm: Norm) -> float:
    """ART's spelling of a norm."""
    return math.inf if norm is Norm.LINF else 2.0


# ------------------------------------------------------------------------------ white box


def _logits(module: Any, output: Output) -> Any:
    """``module`` with its scores as logits (softmax of them gives its probabilities), so ART's
    cross-entropy is right whether the network ends in logits, Softmax or LogSoftmax."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: Any) -> Any:
            z = self.inner(x)
            z = z.reshape(len(z), -1)
            if z.shape[1] == 1:  # one score: a binary model's positive class
                s = z[:, 0]
                if output is Output.LOG_PROBABILITIES:
                    s = torch.exp(s)
                if output is not Output.LOGITS:
                    s = torch.logit(s.clamp(1e-7, 1 - 1e-7))
                return torch.stack([torch.zeros_like(s), s], dim=1)  # softmax: 1-σ(s), σ(s)
            if output is Output.PROBABILITIES:
                return torch.log(z.clamp(min=torch.finfo(z.dtype).tiny))
            return z  # logits; or log-probabilities, whose softmax is the probabilities

    return Logits()


@contextlib.contextmanager
def white_box(predictor: Predictor, sample: Array, n_classes: int,
              clip: tuple[float, float]) -> Iterator[Any]:
    """ART's ``PyTorchClassifier`` for the network behind ``predictor``; every submodule's
    train/eval mode is restored afterwards.

    Raises:
        CapabilityError: no PyTorch network behind ``predictor`` (no gradients to follow).
    """
    module = getattr(predictor, "module", None)
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(module, torch.nn.Module):
        raise CapabilityError("white-box attacks need the model's gradients, and this model "
                              "is not a PyTorch network",
                              hint="use the black-box tests (hopskipjump, square), or assess "
                                   "the PyTorch model the file was exported from")
    from art.estimators.classification import PyTorchClassifier

    output = getattr(predictor, "output", Output.LOGITS)
    first = next((p for p in module.parameters()), None)
    device = "gpu" if first is not None and first.is_cuda else "cpu"
    modes = [(m, m.training) for m in module.modules()]
    wrapped = _logits(module, Output(output)).eval()
    try:
        yield PyTorchClassifier(model=wrapped, loss=torch.nn.CrossEntropyLoss(),
                                input_shape=tuple(sample.shape[1:]), nb_classes=n_classes,
                                clip_values=clip, device_type=device)
    finally:
        for m, mode in modes:
            m.train(mode)


# ------------------------------------------------------------------------------ black box


class BudgetSpent(Exception):  # noqa: N818 - a signal to stop, not an error
    """Raised through the attack when its queries are spent (caught by the runner)."""


class QueryBudget:
    """``predict_proba`` as an attack may call it, for one sample at a time: counts rows,
    keeps the closest misclassified input seen, and stops the attack at ``limit`` queries.

    Args:
        predictor: the model.
        origin: the clean input (its own shape, no batch axis).
        label: its true class index.
        limit: queries allowed.
        norm: how closeness is measured.
        unview: maps the attack's view of inputs back to the model's (Square's image view).
    """

    def __init__(self, predictor: Predictor, origin: Array, label: int, limit: int,
                 norm: Norm, unview: Callable[[Array], Array] | None = None) -> None:
        self._predictor, self._origin, self._label = predictor, origin, label
        self._limit, self._norm, self._unview = limit, norm, unview
        self.queries = 0
        """Rows asked about so far."""
        self.best: Array | None = None
        """The closest misclassified input seen (model's shape), if any."""
        self.best_norm = math.inf
        """Its distance from the clean input."""

    def __call__(self, x: Array) -> npt.NDArray[np.float32]:
        if self.queries + len(x) > self._limit:
            raise BudgetSpent
        self.queries += len(x)
        inputs = self._unview(x) if self._unview is not None else x
        proba = self._predictor.predict_proba(inputs)
        wrong = proba.argmax(axis=1) != self._label
        if wrong.any():
            sizes = norm_of(inputs[wrong] - self._origin[None], self._norm)
            i = int(sizes.argmin())
            if sizes[i] < self.best_norm:
                self.best_norm, self.best = float(sizes[i]), np.array(inputs[wrong][i])
        return np.asarray(proba, dtype=np.float32)


def black_box(budget: QueryBudget, input_shape: tuple[int, ...], n_classes: int,
              clip: tuple[float, float], *, neural: bool = False) -> Any:
    """ART's black-box classifier over ``budget`` (``neural``: the variant Square needs)."""
    from art.estimators.classification import BlackBoxClassifier, BlackBoxClassifierNeuralNetwork

    if neural:
        return BlackBoxClassifierNeuralNetwork(budget, input_shape=input_shape,
                                               nb_classes=n_classes, channels_first=True,
                                               clip_values=clip)
    return BlackBoxClassifier(budget, input_shape=input_shape, nb_classes=n_classes,
                              clip_values=clip)


def as_image(x: Array, low: float) -> tuple[npt.NDArray[np.float32], Callable[[Array], Array]]:
    """``x`` as channels-first images for Square (which only attacks images), and the map
    back. Channels-last images are transposed; anything else is laid out row by row in a
    square image at least 3 pixels wide, padded with ``low`` (the padding is dropped on the
    way back, so a perturbation there changes nothing)."""
    shape = x.shape[1:]
    if len(shape) == 3 and shape[0] in (1, 3, 4):
        return x.astype(np.float32), lambda v: v
    if len(shape) == 3 and shape[-1] in (1, 3, 4):
        return (np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32),
                lambda v: v.transpose(0, 2, 3, 1))
    width = int(np.prod(shape))
    side = max(_MIN_SIDE, math.ceil(math.sqrt(width)))
    padded = np.full((len(x), side * side), low, dtype=np.float32)
    padded[:, :width] = x.reshape(len(x), -1)

    def back(v: Array) -> Array:
        return np.asarray(v).reshape(len(v), -1)[:, :width].reshape(len(v), *shape)

    return padded.reshape(len(x), 1, side, side), back
