"""The predictor for a model object already in memory, and hidden representations of any.

    >>> import numpy as np, torch
    >>> from bastion.models import as_predictor, representations
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> as_predictor(net).spec.n_classes, representations(net, np.zeros((5, 4))).shape
    (2, (5, 3))

Objects from the Python API are the caller's own, so nothing is scanned here; a model *file*
goes through :func:`bastion.models.load_model`, which scans its bytes first.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy.typing as npt

from bastion.models.interface import (
    CapabilityError,
    FloatArray,
    InputSpec,
    ModelError,
    Predictor,
    Representable,
)

__all__ = ["as_predictor", "representations"]

_REPRESENTABLE_HINT = ("pass a PyTorch module, a fitted MLPClassifier (or a Pipeline ending in "
                       "one), or use the model-free method 'outliers'")


def as_predictor(model: Any, *, spec: InputSpec | None = None,
                 batch_size: int = 256) -> Predictor:
    """``model`` as a :class:`Predictor`: one already is returned unchanged; a
    ``torch.nn.Module`` (TorchScript too) becomes a
    :class:`~bastion.models.torch_model.TorchPredictor`; a fitted scikit-learn classifier a
    :class:`~bastion.models.sklearn_model.SklearnPredictor` (an ``MLPPredictor`` for an MLP).

    Raises:
        ModelError: none of these.
    """
    if isinstance(model, Predictor):
        return model
    torch = sys.modules.get("torch")  # a torch module exists only if torch was imported
    if torch is not None and isinstance(model, torch.nn.Module):
        from bastion.models.torch_model import TorchPredictor

        return TorchPredictor(model, spec=spec, batch_size=batch_size)
    if hasattr(model, "classes_") and callable(getattr(model, "predict", None)):
        from bastion.models.sklearn_model import sklearn_predictor

        return sklearn_predictor(model, spec=spec)
    raise ModelError(
        f"a {type(model).__name__} is not a model Bastion can use",
        hint="pass a PyTorch module, a fitted scikit-learn classifier, or a Predictor")


def representations(
    model: Any, inputs: npt.ArrayLike, *, layer: str | None = None, batch_size: int = 256
) -> FloatArray:
    """The hidden representation of each input, one row each.

    ``model`` is a :class:`Representable` predictor, a PyTorch module (``layer`` is a module
    name, default the input of the last ``Linear``), or a fitted scikit-learn
    ``MLPClassifier`` or a ``Pipeline`` ending in one (``layer`` is the hidden layer index,
    default the last).

    Raises:
        CapabilityError: the model has no representations to read, or no such layer.
    """
    what = type(model).__name__
    if not isinstance(model, Predictor):
        try:
            model = as_predictor(model, batch_size=batch_size)
        except CapabilityError:
            raise
        except ModelError:
            model = None
    if not isinstance(model, Representable):
        raise CapabilityError(f"cannot read hidden representations from a {what}",
                              hint=_REPRESENTABLE_HINT)
    return model.representations(inputs, layer)
