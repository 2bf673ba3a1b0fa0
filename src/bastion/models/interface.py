"""The models layer's contracts: what a loaded model can do, described once for every format.

    >>> import numpy as np
    >>> from bastion.models.interface import InputSpec
    >>> spec = InputSpec(shape=(4,), labels=("cat", "dog"))
    >>> spec.n_classes, spec.check(np.zeros((3, 4))).dtype.name
    (2, 'float32')

A :class:`Predictor` is a classifier seen from outside: an :class:`InputSpec`, class indices
and class probabilities. What only some models can give is a separate capability protocol
(:class:`Differentiable`: input gradients for attacks; :class:`Representable`: hidden
representations for poisoning and OoD detectors; :class:`Scorable`: raw class scores, for
the energy OoD score), checked with ``isinstance``: an ONNX model
is a Predictor and nothing more; a PyTorch module is all three.

Class indices are positions in :attr:`InputSpec.labels` and columns of
:meth:`Predictor.predict_proba`, for every format (a scikit-learn estimator's own labels are
``spec.labels``), so ``predict(x) == predict_proba(x).argmax(axis=1)`` everywhere.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from bastion.errors import BastionError
from bastion.findings import Finding

__all__ = [
    "CapabilityError",
    "Differentiable",
    "FloatArray",
    "IndexArray",
    "InputSpec",
    "InputSpecError",
    "Label",
    "MissingDependencyError",
    "ModelError",
    "ModelFormatError",
    "Output",
    "Predictor",
    "Representable",
    "Scorable",
    "UnsafeModelError",
]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]
Label = str | int | float
"""A class label as the model knows it (a scikit-learn ``classes_`` entry, or a name)."""


# --------------------------------------------------------------------------------- errors


class ModelError(BastionError):
    """A model cannot be loaded or used as asked."""


class UnsafeModelError(ModelError):
    """The scan of the model's bytes found something at or above the gate; nothing was loaded.

    Exit code 1, as ``bastion scan`` gives for the same findings.
    """

    exit_code = 1

    def __init__(self, message: str, *, findings: Sequence[Finding],
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.findings: tuple[Finding, ...] = tuple(findings)
        """The findings that refused it, worst first."""


class ModelFormatError(ModelError):
    """The bytes are not a model Bastion can load: unknown, damaged, too big, or incomplete."""


class MissingDependencyError(ModelError):
    """The format needs an optional package that is not installed."""


class CapabilityError(ModelError):
    """The model cannot do what was asked (no gradients, no such layer, no probabilities)."""


class InputSpecError(ModelError):
    """Inputs that do not fit the model's :class:`InputSpec`, or a malformed spec."""


class Output(enum.StrEnum):
    """What a network's output scores are. ``AUTO``: read from its last layer when it can be,
    else logits."""

    AUTO = "auto"
    LOGITS = "logits"
    PROBABILITIES = "probabilities"
    LOG_PROBABILITIES = "log-probabilities"


# ------------------------------------------------------------------------------ input spec


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What a model takes and what it tells apart. Checks itself when built."""

    shape: tuple[int | None, ...] | None = None
    """One input's shape, without the batch axis; ``None`` on an axis of any length (an ONNX
    dynamic axis, an image's height for a CNN); ``None`` as a whole when not known."""
    dtype: str = "float32"
    """NumPy dtype inputs are converted to (``float32`` for networks)."""
    value_range: tuple[float, float] | None = None
    """The valid range of input values (``(0.0, 1.0)`` for scaled pixels), when declared:
    attacks clip to it, a gateway may enforce it."""
    n_classes: int | None = None
    """How many classes the model tells apart, when known (the width of its probabilities)."""
    labels: tuple[Label, ...] | None = None
    """The label of each class index, when known; else indices are the labels."""

    def __post_init__(self) -> None:
        if self.shape is not None:
            shape = tuple(self.shape)
            if any(d is not None and (not isinstance(d, int) or d < 1) for d in shape):
                raise InputSpecError(f"an input shape holds positive sizes or None, not {shape}")
            object.__setattr__(self, "shape", shape)
        try:
            object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        except TypeError:
            raise InputSpecError(f"{self.dtype!r} is not a NumPy dtype",
                                 hint="e.g. float32, float64, int64") from None
        if self.value_range is not None:
            low, high = (float(v) for v in self.value_range)
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise InputSpecError(f"the value range {self.value_range} is not low < high")
            object.__setattr__(self, "value_range", (low, high))
        if self.labels is not None:
            labels = tuple(self.labels)
            if len(set(labels)) != len(labels):
                raise InputSpecError("class labels must be distinct")
            if self.n_classes is None:
                object.__setattr__(self, "n_classes", len(labels))
            elif self.n_classes != len(labels):
                raise InputSpecError(
                    f"{len(labels)} labels for {self.n_classes} classes")
            object.__setattr__(self, "labels", labels)
        if self.n_classes is not None and self.n_classes < 1:
            raise InputSpecError(f"a classifier has at least one class, not {self.n_classes}")

    def check(self, x: npt.ArrayLike) -> npt.NDArray[Any]:
        """``x`` as a batch of this spec's dtype, after checking its shape (fails closed).

        Raises:
            InputSpecError: ``x`` is not a batch of inputs of this shape, or does not convert.
        """
        try:
            array = np.asarray(x, dtype=self.dtype)
        except (TypeError, ValueError) as exc:
            raise InputSpecError(f"inputs do not convert to {self.dtype}: {exc}") from None
        if self.shape is None:
            if array.ndim < 1:
                raise InputSpecError("inputs need a batch axis", hint="pass x[None] for one")
            return array
        if array.ndim != len(self.shape) + 1 or any(
            d is not None and d != got for d, got in zip(self.shape, array.shape[1:], strict=True)
        ):
            expected = ", ".join(["n", *("?" if d is None else str(d) for d in self.shape)])
            raise InputSpecError(
                f"inputs of shape {array.shape}, but the model takes ({expected})",
                hint="the first axis is the batch: pass x[None] for a single input")
        return array

    def label(self, index: int) -> Label:
        """The label of class ``index`` (the index itself when the model names none)."""
        return self.labels[index] if self.labels is not None else index

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (model metadata: a gateway shows it to privileged roles only)."""
        return {"shape": None if self.shape is None else list(self.shape), "dtype": self.dtype,
                "value_range": None if self.value_range is None else list(self.value_range),
                "n_classes": self.n_classes,
                "labels": None if self.labels is None else list(self.labels)}


# ------------------------------------------------------------------------------- protocols


@runtime_checkable
class Predictor(Protocol):
    """A classifier, whatever its format: what ``assess``, the gateway and ``learn`` call."""

    @property
    def spec(self) -> InputSpec:
        """What it takes and what it tells apart."""
        ...

    def predict(self, x: npt.ArrayLike) -> IndexArray:
        """The predicted class index of each input (a position in ``spec.labels``)."""
        ...

    def predict_proba(self, x: npt.ArrayLike) -> FloatArray:
        """Class probabilities, one row per input, one column per class index; rows sum to 1."""
        ...


@runtime_checkable
class Differentiable(Protocol):
    """A predictor whose loss can be differentiated with respect to its inputs (white-box
    evasion attacks: FGSM, PGD, Carlini-Wagner, as ART's ``loss_gradient``)."""

    def loss_gradient(self, x: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
        """Gradient of each input's own cross-entropy loss with respect to that input.

        Args:
            x: a batch of inputs.
            y: the true classes: indices ``(n,)``, or one-hot / probability rows ``(n, k)``
                (ART's convention; the argmax of each row is taken).

        Returns:
            An array of ``x``'s shape. Each row is the gradient of that input's loss alone
            (losses are summed, not averaged), so it does not depend on the batch.
        """
        ...


@runtime_checkable
class Representable(Protocol):
    """A predictor whose hidden representations can be read (spectral signatures, activation
    clustering, feature-space OoD detectors)."""

    def representations(self, x: npt.ArrayLike, layer: str | None = None) -> FloatArray:
        """One row per input: the activations of ``layer`` flattened; by default the
        penultimate representation (the input of the last linear layer).

        Raises:
            CapabilityError: no such layer, or no linear layer to take the default from.
        """
        ...


@runtime_checkable
class Scorable(Protocol):
    """A predictor whose raw class scores (logits, before softmax) can be read: the energy
    score of an OoD detector needs them, and probabilities lose them (softmax forgets each
    row's scale)."""

    def logits(self, x: npt.ArrayLike) -> FloatArray:
        """One row of class scores per input, whose softmax is :meth:`Predictor.predict_proba`
        (a binary model's one score ``z`` as the row ``[0, z]``).

        Raises:
            CapabilityError: the model gives probabilities only (it ends in a softmax).
        """
        ...
