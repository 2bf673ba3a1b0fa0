"""scikit-learn classifiers as predictors; a fitted MLP's hidden layers as representations.

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from bastion.models.sklearn_model import sklearn_predictor
    >>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array(["a", "a", "b", "b"])
    >>> p = sklearn_predictor(LogisticRegression().fit(X, y))
    >>> p.spec.labels, p.spec.label(int(p.predict([[3.0]])[0]))
    (('a', 'b'), 'b')

Predictions are class indices into ``spec.labels`` (the estimator's ``classes_``), like every
predictor's. No gradients: a tree ensemble has none, and for the rest the black-box attacks
of ``assess`` apply. Representations exist for a fitted ``MLPClassifier``, or a ``Pipeline``
ending in one, computed with the MLP's own weights and activation function.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.models.interface import (
    CapabilityError,
    FloatArray,
    IndexArray,
    InputSpec,
    InputSpecError,
    Label,
    ModelError,
)

__all__ = ["MLPPredictor", "SklearnPredictor", "mlp_representations", "sklearn_predictor"]


def _label(value: Any) -> Label:
    item = value.item() if isinstance(value, np.generic) else value
    if isinstance(item, str | int | float):
        return item
    return str(item)


class SklearnPredictor:
    """A fitted scikit-learn classifier (or a ``Pipeline`` ending in one) as a
    :class:`Predictor`.

    Args:
        estimator: anything with ``classes_`` and ``predict`` (and ``predict_proba`` for
            probabilities).
        spec: what it takes; default ``(n_features_in_,)`` float64 and its ``classes_``.
    """

    def __init__(self, estimator: Any, *, spec: InputSpec | None = None) -> None:
        classes = getattr(estimator, "classes_", None)
        if classes is None or not callable(getattr(estimator, "predict", None)):
            raise ModelError(
                f"a {type(estimator).__name__} is not a fitted scikit-learn classifier",
                hint="a predictor needs classes_ and predict (regressors are not supported)")
        self._estimator = estimator
        self._classes = np.asarray(classes)
        if spec is None:
            width = getattr(estimator, "n_features_in_", None)
            spec = InputSpec(shape=(int(width),) if isinstance(width, int | np.integer) else None,
                             dtype="float64", labels=tuple(_label(c) for c in self._classes))
        self._spec = spec
        self._index = {_label(c): i for i, c in enumerate(self._classes)}

    @property
    def spec(self) -> InputSpec:
        """What the estimator takes and its classes."""
        return self._spec

    @property
    def estimator(self) -> Any:
        """The estimator itself (for tools that wrap it, such as ART's ``SklearnClassifier``)."""
        return self._estimator

    def _inputs(self, x: npt.ArrayLike) -> npt.NDArray[Any]:
        """A checked ``(n, features)`` matrix: scikit-learn takes rows, so images are
        flattened first."""
        try:
            array = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise InputSpecError(f"inputs do not form an array: {exc}") from None
        if array.ndim > 2:
            array = array.reshape(len(array), -1)
        return self._spec.check(array)

    def predict(self, x: npt.ArrayLike) -> IndexArray:
        """The index in ``spec.labels`` of the estimator's prediction for each input."""
        predicted = self._estimator.predict(self._inputs(x))
        try:
            return np.fromiter((self._index[_label(v)] for v in predicted), dtype=np.int64,
                               count=len(predicted))
        except KeyError as exc:
            raise ModelError(f"the estimator predicted {exc.args[0]!r}, not one of its "
                             "classes_") from None

    def predict_proba(self, x: npt.ArrayLike) -> FloatArray:
        """The estimator's ``predict_proba``, columns in ``classes_`` order."""
        method = getattr(self._estimator, "predict_proba", None)
        if not callable(method):
            raise CapabilityError(
                f"a {type(self._estimator).__name__} gives no probabilities",
                hint="use predict(), or calibrate it (sklearn.calibration.CalibratedClassifierCV)")
        try:
            return np.asarray(method(self._inputs(x)), dtype=np.float64)
        except AttributeError as exc:  # SVC(probability=False) exposes the method, then raises
            raise CapabilityError(f"the estimator gives no probabilities: {exc}") from None


class MLPPredictor(SklearnPredictor):
    """A fitted ``MLPClassifier`` (or a ``Pipeline`` ending in one): also
    :class:`Representable` (its hidden layers) and :class:`Scorable` (its output layer)."""

    def representations(self, x: npt.ArrayLike, layer: str | None = None) -> FloatArray:
        """Hidden activations: ``layer`` is a hidden layer's index (``"0"`` is the first);
        default the last hidden layer (the penultimate one). A pipeline's steps before the
        MLP are applied first."""
        features = np.asarray(self._inputs(x), dtype=np.float64)
        return mlp_representations(self._estimator, features, layer)

    def logits(self, x: npt.ArrayLike) -> FloatArray:
        """The output layer before its softmax (or logistic, for two classes: ``[0, z]``)."""
        mlp = _final_mlp(self._estimator)
        features = np.asarray(self._inputs(x), dtype=np.float64)
        hidden = mlp_representations(self._estimator, features, None)
        z = hidden @ mlp.coefs_[-1] + mlp.intercepts_[-1]
        if z.shape[1] == 1:
            z = np.concatenate([np.zeros_like(z), z], axis=1)
        return np.asarray(z, dtype=np.float64)


def _final_mlp(estimator: Any) -> Any:
    """The ``MLPClassifier`` the estimator is or ends in, else ``None``."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    return estimator if isinstance(estimator, MLPClassifier) else None


def mlp_representations(model: Any, features: FloatArray, layer: str | None) -> FloatArray:
    """Hidden activations of a fitted ``MLPClassifier`` or a ``Pipeline`` ending in one.

    Raises:
        CapabilityError: not such a model, or no hidden layer ``layer``.
    """
    from sklearn.pipeline import Pipeline

    mlp = _final_mlp(model)
    if mlp is None:
        raise CapabilityError(
            f"cannot read hidden representations from a {type(model).__name__}",
            hint="pass a PyTorch module, a fitted MLPClassifier (or a Pipeline ending in one), "
                 "or use the model-free method 'outliers'")
    if isinstance(model, Pipeline):
        for _, step in model.steps[:-1]:
            features = step.transform(features)
    hidden = len(mlp.coefs_) - 1
    try:
        index = hidden - 1 if layer is None else int(layer)
    except ValueError:
        index = -1
    if not 0 <= index < hidden:
        raise CapabilityError(f"the MLP has hidden layers 0…{hidden - 1}, not {layer}")
    from sklearn.neural_network._base import ACTIVATIONS  # the MLP's own, applied in place

    out = np.asarray(features, dtype=np.float64)
    for i in range(index + 1):
        out = out @ mlp.coefs_[i] + mlp.intercepts_[i]
        ACTIVATIONS[mlp.activation](out)
    return np.asarray(out, dtype=np.float64)


def sklearn_predictor(estimator: Any, *, spec: InputSpec | None = None) -> SklearnPredictor:
    """The predictor for ``estimator``: an :class:`MLPPredictor` when it is or ends in a
    fitted ``MLPClassifier``, else a :class:`SklearnPredictor`."""
    mlp = _final_mlp(estimator)
    if mlp is not None and hasattr(mlp, "coefs_"):  # fitted
        return MLPPredictor(estimator, spec=spec)
    return SklearnPredictor(estimator, spec=spec)
