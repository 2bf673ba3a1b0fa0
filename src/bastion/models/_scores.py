"""Output scores to probabilities, and true-class arguments to indices (NumPy side)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from bastion.models.interface import FloatArray, IndexArray, InputSpecError, Output

__all__ = ["class_indices", "probabilities"]


def probabilities(scores: npt.NDArray[np.floating], output: Output) -> FloatArray:
    """Rows of class probabilities from a network's ``(n, k)`` scores (``k == 1``: one binary
    score, the positive class's)."""
    z = np.asarray(scores, dtype=np.float64)
    if z.ndim != 2:
        z = z.reshape(len(z), -1)
    if z.shape[1] == 1:  # one score: the positive class of a binary model
        if output is Output.LOGITS:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
        elif output is Output.LOG_PROBABILITIES:
            p = np.exp(z[:, 0])
        else:
            p = z[:, 0]
        return np.stack([1.0 - p, p], axis=1)
    if output is Output.LOGITS:
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)
    if output is Output.LOG_PROBABILITIES:
        return np.asarray(np.exp(z), dtype=np.float64)
    return z


def class_indices(y: npt.ArrayLike, n: int, n_classes: int | None) -> IndexArray:
    """True classes as indices: ``(n,)`` indices, or ``(n, k)`` one-hot / probability rows."""
    array = np.asarray(y)
    if array.ndim == 2:
        array = array.argmax(axis=1)
    if array.ndim != 1 or len(array) != n:
        raise InputSpecError(f"{array.shape} labels for {n} inputs",
                             hint="pass one class index per input, or one-hot rows")
    if array.dtype.kind not in "iub":
        rounded = np.rint(array.astype(np.float64))
        if not np.array_equal(rounded, array):
            raise InputSpecError("labels must be class indices (integers)")
        array = rounded
    indices = array.astype(np.int64)
    if len(indices) and (indices.min() < 0 or (n_classes and indices.max() >= n_classes)):
        raise InputSpecError(f"class indices must lie in 0…{(n_classes or 0) - 1}")
    return indices
