"""Image layouts, and the exact array a model takes from a dataset.

    >>> from bastion.data.layout import infer_layout
    >>> [infer_layout(s).value for s in [(1, 28, 28), (28, 28, 3), (3, 4, 4), (8, 8, 8)]]
    ['nchw', 'nhwc', 'auto', 'auto']

A 4-D array is NCHW ``(n, channels, height, width)``, PyTorch's order, or NHWC ``(n, height,
width, channels)``, the order of TensorFlow, Pillow and most NumPy code. Bastion stores images
as NHWC (:attr:`Dataset.pixels <bastion.data.interface.Dataset.pixels>`) and decides how a
file's axes are ordered, in this order:

1. what the user said (``layout=``, ``--layout``);
2. the shape, when it says: a channel axis (size 1, 3 or 4) on exactly one side;
3. the model, when one is given: the channels its first layer takes;
4. otherwise a :class:`~bastion.data.interface.DataValidationError` naming the shape and
   asking for the layout. Model-free checks never need it (they read the values flat).

:func:`model_inputs` then builds what the model takes: NCHW float32 for a convolutional
PyTorch network, one row of features per sample (in the file's order, or by name for a
scikit-learn model fitted on a table) for a model whose input is flat, and an error that names
both shapes when the data does not fit the model. Nothing here loads a model: it reads the
:class:`~bastion.models.Predictor` it is given (``load_model(path).predictor``, which scanned
the file first, or an object from the Python API).
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from bastion.data.choices import Layout
from bastion.data.interface import Dataset, DatasetKind, DataValidationError
from bastion.models.interface import InputSpecError, ModelError, Predictor

__all__ = ["Layout", "infer_layout", "model_inputs", "to_nhwc", "with_layout"]

_CHANNELS: Final = frozenset({1, 3, 4})
"""Sizes a channel axis has: grey, RGB, RGBA."""
_SAY: Final = ("say which: nchw (n, channels, height, width) or nhwc (n, height, width, "
               "channels)")


def infer_layout(sample: tuple[int, ...]) -> Layout:
    """The layout one sample's shape ``(a, b, c)`` shows: NCHW when only ``a`` is a channel
    count (1, 3 or 4), NHWC when only ``c`` is, ``AUTO`` (undecided) otherwise."""
    if len(sample) != 3:
        return Layout.AUTO
    first, last = sample[0] in _CHANNELS, sample[-1] in _CHANNELS
    if first == last:
        return Layout.AUTO
    return Layout.NCHW if first else Layout.NHWC


def to_nhwc(array: npt.NDArray[Any], layout: Layout) -> npt.NDArray[np.float32]:
    """A 4-D array in ``layout`` as float32 ``(n, h, w, c)``."""
    if layout is Layout.AUTO:
        raise ValueError("to_nhwc needs a decided layout, nchw or nhwc")
    nhwc = array.transpose(0, 2, 3, 1) if layout is Layout.NCHW else array
    return np.ascontiguousarray(nhwc, dtype=np.float32)


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join(["n", *("?" if d is None else str(d) for d in shape)]) + ")"


# ------------------------------------------------------------------------ what the model takes


@dataclass(frozen=True)
class _Expects:
    """What a model's input looks like, as far as it can be read."""

    shape: tuple[int | None, ...] | None
    """One input's shape (``None`` on an axis of any size); ``None``: not known."""
    dtype: str
    """The dtype the model computes in."""
    torch: bool
    """A PyTorch network: images go in channels first."""

    @property
    def flat(self) -> bool:
        return self.shape is not None and len(self.shape) == 1


def _predictor(model: Any) -> Predictor | None:
    if isinstance(model, Predictor):
        return model
    from bastion.models import as_predictor

    try:
        return as_predictor(model)
    except ModelError:
        return None


def _torch_module(predictor: Predictor) -> Any:
    """The ``torch.nn.Module`` behind ``predictor``, or ``None``."""
    torch = sys.modules.get("torch")
    module = getattr(predictor, "module", None)
    return module if torch is not None and isinstance(module, torch.nn.Module) else None


def _first_layer(module: Any) -> tuple[int | None, ...] | None:
    """The input shape of the first convolution or linear layer the module declares (a
    custom module's forward is code, so its spec says nothing; its first layer usually does)."""
    import torch

    for layer in module.modules():
        scripted = isinstance(layer, torch.jit.ScriptModule)
        kind = str(getattr(layer, "original_name", "")) if scripted else type(layer).__name__
        if kind == "Linear" and isinstance(getattr(layer, "in_features", None), int):
            return (int(layer.in_features),)
        dims = {"Conv1d": 1, "Conv2d": 2, "Conv3d": 3}.get(kind)
        if dims is not None and isinstance(getattr(layer, "in_channels", None), int):
            return (int(layer.in_channels), *([None] * dims))
    return None


def _expects(predictor: Predictor) -> _Expects:
    spec = predictor.spec
    module = _torch_module(predictor)
    if module is None:
        return _Expects(spec.shape, spec.dtype, torch=False)
    if spec.shape is not None:
        return _Expects(spec.shape, spec.dtype, torch=True)
    return _Expects(_first_layer(module), spec.dtype, torch=True)


def _fits(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(
        e is None or e == s for s, e in zip(shape, expected, strict=True))


# ------------------------------------------------------------------------------ the data side


def _raw(dataset: Dataset) -> npt.NDArray[np.float64] | None:
    """The samples in the file's own shape, when they came from an array file."""
    if dataset.shape is None:
        return None
    raw: npt.NDArray[np.float64] = dataset.frame.to_numpy(np.float64)
    return raw.reshape(len(dataset), *dataset.shape)


def _images(dataset: Dataset, layout: Layout) -> list[tuple[Layout, npt.NDArray[np.float32]]]:
    """The ways the data can be read as NHWC images: one when the layout is decided, both
    when it is not, none for features that are not images."""
    raw = _raw(dataset)
    if raw is not None and raw.ndim == 4:
        if layout is not Layout.AUTO:
            return [(layout, to_nhwc(raw, layout))]
        if dataset.pixels is not None and dataset.layout not in (None, Layout.AUTO):
            return [(dataset.layout, dataset.pixels)]
        decided = infer_layout(raw.shape[1:])
        if decided is not Layout.AUTO:
            return [(decided, to_nhwc(raw, decided))]
        return [(each, to_nhwc(raw, each)) for each in (Layout.NCHW, Layout.NHWC)]
    if dataset.pixels is not None:  # image folders, (n, h, w) grey arrays
        return [(dataset.layout or Layout.NHWC, dataset.pixels)]
    return []


def _described(dataset: Dataset) -> str:
    if dataset.shape is not None:
        return f"X {_shape_text(dataset.shape)}"
    if dataset.pixels is not None:
        return f"images {_shape_text(dataset.pixels.shape[1:])} (height, width, channels)"
    return f"{dataset.matrix.shape[1]} feature column(s)"


def _ambiguous(dataset: Dataset, why: str) -> DataValidationError:
    shape = dataset.shape or ()
    return DataValidationError(
        f"{dataset.source}: X {_shape_text(shape)} could be NCHW or NHWC images ({why})",
        hint=_SAY, param="layout")


def _flat(dataset: Dataset, predictor: Predictor | None) -> npt.NDArray[np.float64]:
    """One row per sample: the file's values in its order (arrays), the numeric columns
    (tables; by name when a scikit-learn model was fitted on named columns), or the pixels."""
    if dataset.shape is not None:
        values: npt.NDArray[np.float64] = dataset.frame.to_numpy(np.float64)
        return values
    names = getattr(getattr(predictor, "estimator", None), "feature_names_in_", None)
    if dataset.kind is DatasetKind.TABULAR and names is not None:
        columns = [c for c in dataset.frame.columns
                   if not pd.api.types.is_datetime64_any_dtype(dataset.frame[c])]
        wanted = [str(n) for n in names]
        missing = [n for n in wanted if n not in columns]
        if missing:
            raise DataValidationError(
                f"{dataset.source}: the model was fitted on column(s) the data lacks: "
                f"{', '.join(missing[:10])}",
                hint=f"the data's columns: {', '.join(map(str, columns[:20]))}; give the "
                     "table the model was trained on, or the model trained on this table")
        where = {str(c): i for i, c in enumerate(columns)}
        return dataset.matrix[:, [where[n] for n in wanted]]
    return dataset.matrix


def _mismatch(dataset: Dataset, expects: _Expects, got: str, hint: str) -> DataValidationError:
    takes = "inputs of unknown shape" if expects.shape is None else (
        f"{expects.shape[0]} features per sample" if expects.flat
        else f"inputs {_shape_text(expects.shape)}")
    if expects.torch and expects.shape is not None and len(expects.shape) == 3:
        takes = f"images {_shape_text(expects.shape)} (n, channels, height, width)"
    return DataValidationError(
        f"{dataset.source}: the model takes {takes}, but the data gives {got}", hint=hint)


# --------------------------------------------------------------------------------- the answer


def _images_for(dataset: Dataset, expects: _Expects, layout: Layout,
                ) -> tuple[Layout, npt.NDArray[np.float32]]:
    """The one way of reading the data as images that fits the model, arranged for it."""
    readings = _images(dataset, layout)
    if not readings:
        raise _mismatch(dataset, expects, _described(dataset),
                        hint="a convolutional model takes images: save X as (n, channels, "
                             "height, width) or (n, height, width, channels), or use the "
                             "model trained on these features")
    fits: list[tuple[Layout, npt.NDArray[np.float32]]] = []
    for each, nhwc in readings:
        _, h, w, c = nhwc.shape
        arrangements = ((True,) if expects.torch or expects.shape is None else (True, False))
        for first in arrangements:
            sample = (c, h, w) if first else (h, w, c)
            if expects.shape is None or _fits(sample, expects.shape):
                fits.append((each, nhwc.transpose(0, 3, 1, 2) if first else nhwc))
                break
    if not fits:
        read = ", ".join(f"as {each.value} it is {_shape_text(_arranged(nhwc, expects))}"
                         for each, nhwc in readings)
        other = ("" if len(readings) > 1 or dataset.shape is None or len(dataset.shape) != 3
                 else " (or say the layout, if the shape was read the wrong way round)")
        raise _mismatch(dataset, expects, f"{_described(dataset)}: {read}",
                        hint="give the model the data it was trained on (channels, size), or "
                             f"use the model trained on this data{other}")
    if len(fits) > 1:
        raise _ambiguous(dataset, "the model takes either; nothing in the shape decides")
    return fits[0]


def _arranged(nhwc: npt.NDArray[Any], expects: _Expects) -> tuple[int, ...]:
    _, h, w, c = nhwc.shape
    if expects.torch or expects.shape is None or not _fits((h, w, c), expects.shape):
        return (c, h, w)
    return (h, w, c)


def _probe(dataset: Dataset, predictor: Predictor, x: npt.NDArray[Any]) -> None:
    """Run the model on one input: a network whose later layers want another size (a
    ``Linear`` after ``Flatten`` sized for 28×28, fed 8×8) fails here, with both shapes named,
    rather than deep inside a detector."""
    if not len(x):
        return
    try:
        with warnings.catch_warnings():  # the columns were matched by name already
            warnings.filterwarnings("ignore", "X does not have valid feature names")
            predictor.predict_proba(x[:1])
    except (InputSpecError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        detail = exc.message if isinstance(exc, InputSpecError) else " ".join(str(exc).split())
        raise DataValidationError(
            f"{dataset.source}: the model cannot run on inputs {_shape_text(x.shape[1:])} "
            f"made from {_described(dataset)}: {detail[:300]}",
            hint="give the model the data it was trained on (channels, height, width), or "
                 "the layout it was stored in") from None
    except ModelError:
        pass  # not about the input's shape (no probabilities, a tuple output): a detector
        # that needs more says so itself


def model_inputs(
    dataset: Dataset, model: Any = None, layout: Layout = Layout.AUTO
) -> npt.NDArray[Any]:
    """Exactly the array ``model`` takes for ``dataset``'s samples, one per sample, in order.

    Args:
        dataset: the data (an array file, an image folder or a table).
        model: a :class:`~bastion.models.Predictor` (``load_model(path).predictor``), a
            ``torch.nn.Module`` or a fitted scikit-learn classifier; ``None``: images go out as
            NCHW float32 (PyTorch's order), anything else as the feature matrix.
        layout: how a 4-D array's axes are ordered (overrides what loading decided);
            ``AUTO``: as loaded, else inferred from the shape, else the model's first layer.

    Returns:
        NCHW (or NHWC, for a model that takes that) images in the model's dtype (float32) for
        a model that takes images; ``(n, features)`` rows for a model whose input is flat (a
        ``Linear`` first layer, scikit-learn, a 2-D ONNX input): an array's values in the
        file's order, a table's numeric columns in its order (by name for an estimator fitted
        on named columns).

    Raises:
        DataValidationError: the layout cannot be told (the message names the shape; say
            ``layout=``), or the data does not fit the model (both shapes named).
    """
    if model is None:
        if dataset.pixels is not None or (dataset.shape is not None and len(dataset.shape) == 3):
            anything = _Expects(None, "float32", torch=True)
            return np.ascontiguousarray(_images_for(dataset, anything, layout)[1])
        return _flat(dataset, None)
    predictor = _predictor(model)
    if predictor is None:  # not a model Bastion can read: the detector says so itself
        return _flat(dataset, None)
    expects = _expects(predictor)
    if expects.flat or (expects.shape is None and not (expects.torch and _images(dataset,
                                                                                  layout))):
        x: npt.NDArray[Any] = _flat(dataset, predictor)
        if expects.shape is not None and expects.shape[0] is not None \
                and x.shape[1] != expects.shape[0]:
            raise _mismatch(dataset, expects, f"{x.shape[1]} ({_described(dataset)})",
                            hint="give the model the data it was trained on, or the model "
                                 "trained on this data")
    elif expects.shape is not None and len(expects.shape) != 3:
        raw = _raw(dataset)
        if raw is None or not _fits(raw.shape[1:], expects.shape):
            raise _mismatch(dataset, expects, _described(dataset),
                            hint="store X in the shape the model takes, one sample per row")
        x = raw
    else:
        x = _images_for(dataset, expects, layout)[1]
    x = np.ascontiguousarray(x, dtype=expects.dtype)
    _probe(dataset, predictor, x)
    return x


def with_layout(dataset: Dataset, model: Any = None, layout: Layout = Layout.AUTO) -> Dataset:
    """``dataset`` with its images read in the layout that ``layout``, the shape or ``model``
    decides (:attr:`~bastion.data.interface.Dataset.pixels` filled, NHWC); unchanged when it
    is not a 4-D array or nothing decides. Raises as :func:`model_inputs` does."""
    raw = _raw(dataset)
    if raw is None or raw.ndim != 4:
        return dataset
    readings = _images(dataset, layout)
    if len(readings) > 1 and model is not None:
        predictor = _predictor(model)
        expects = _expects(predictor) if predictor is not None else None
        if expects is not None and not expects.flat and expects.shape is not None:
            decided, _ = _images_for(dataset, expects, layout)
            readings = [r for r in readings if r[0] is decided]
    if len(readings) != 1 or (readings[0][0] is dataset.layout and dataset.pixels is not None):
        return dataset
    decided, nhwc = readings[0]
    return dataclasses.replace(dataset, pixels=nhwc, layout=decided)
