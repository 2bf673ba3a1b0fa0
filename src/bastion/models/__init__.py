"""Load a model for use: scan its exact bytes first, then load it safely, behind one protocol.

    >>> import pickle, tempfile, pathlib
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from bastion.models import Predictor, load_model
    >>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pkl"
    >>> _ = path.write_bytes(pickle.dumps(LogisticRegression().fit(X, y)))
    >>> loaded = load_model(path)
    >>> loaded.format.value, isinstance(loaded.predictor, Predictor)
    ('pickle', True)
    >>> loaded.predictor.predict([[0.2], [2.9]]).tolist()
    [0, 1]

Architecture, in the style of the rest of Bastion:

* ``interface`` — the :class:`Predictor` protocol (``spec``, ``predict``, ``predict_proba``)
  and the capability protocols :class:`Differentiable` (``loss_gradient``, for white-box
  attacks), :class:`Representable` (``representations``, for poisoning and OoD detectors) and
  :class:`Scorable` (``logits``, for the energy OoD score);
  :class:`InputSpec`; the errors, all :class:`ModelError`.
* ``torch_model``, ``sklearn_model``, ``onnx_model`` — one predictor per framework, each
  importing its framework on first use.
* ``loaders`` — :func:`load_model`: read once, :func:`bastion.scan.scan_bytes`, gate, load
  by sniffed format, wrap. Formats that hold no code (ONNX, safetensors, skops, TorchScript)
  are preferred; pickles go through the scanner's restricted unpickler.
* ``predictors`` — :func:`as_predictor` and :func:`representations` for model objects that
  are already in memory (the Python API; nothing to scan).

``assess`` (evasion, privacy, extraction), the gateway and ``learn``'s candidate gate build on
:class:`Predictor` only, so they work the same for every format. See ``docs/models.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bastion.models.interface import (
    CapabilityError,
    Differentiable,
    InputSpec,
    InputSpecError,
    MissingDependencyError,
    ModelError,
    ModelFormatError,
    Output,
    Predictor,
    Representable,
    Scorable,
    UnsafeModelError,
)

if TYPE_CHECKING:
    from bastion.models.loaders import (
        MAX_BYTES,
        LoadedModel,
        ModelFormat,
        load_model,
        load_model_bytes,
    )
    from bastion.models.onnx_model import OnnxPredictor
    from bastion.models.predictors import as_predictor, representations
    from bastion.models.sklearn_model import MLPPredictor, SklearnPredictor
    from bastion.models.torch_model import TorchPredictor

__all__ = [
    "MAX_BYTES",
    "CapabilityError",
    "Differentiable",
    "InputSpec",
    "InputSpecError",
    "LoadedModel",
    "MLPPredictor",
    "MissingDependencyError",
    "ModelError",
    "ModelFormat",
    "ModelFormatError",
    "OnnxPredictor",
    "Output",
    "Predictor",
    "Representable",
    "Scorable",
    "SklearnPredictor",
    "TorchPredictor",
    "UnsafeModelError",
    "as_predictor",
    "load_model",
    "load_model_bytes",
    "representations",
]

_LAZY = {
    "MAX_BYTES": "loaders", "LoadedModel": "loaders", "ModelFormat": "loaders",
    "load_model": "loaders", "load_model_bytes": "loaders",
    "OnnxPredictor": "onnx_model", "as_predictor": "predictors",
    "representations": "predictors", "MLPPredictor": "sklearn_model",
    "SklearnPredictor": "sklearn_model", "TorchPredictor": "torch_model",
}


def __getattr__(name: str) -> object:
    """Loaders and predictors are imported on first use (the interface needs none of them)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bastion.models.{module}"), name)
