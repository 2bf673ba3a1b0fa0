"""ONNX classifiers as predictors, run by onnxruntime on the CPU.

    >>> from bastion.models.onnx_model import OnnxPredictor
    >>> p = OnnxPredictor.from_bytes(onnx_bytes)                    # doctest: +SKIP
    >>> p.spec.shape, p.predict_proba(x).shape                      # doctest: +SKIP
    ((4,), (5, 2))

The session is built from bytes already in memory (the bytes that were scanned), never from a
path. The input spec is the session's one input (dynamic axes are ``None``); the scores are
the first floating-point output of shape ``(n, k)`` (a converted scikit-learn model also
outputs its labels, which are skipped). Whether they are logits or probabilities is read from
the node that produces them (``Softmax``/``LogSoftmax``, when the ``onnx`` package is there to
read the graph), else from the output's name, else they are taken as logits; pass ``output=``
to say. No gradients and no representations: an ONNX graph is a black box here.

onnxruntime is an optional extra (``bastion[models]``), imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt

from bastion.models._scores import probabilities
from bastion.models.interface import (
    CapabilityError,
    FloatArray,
    IndexArray,
    InputSpec,
    MissingDependencyError,
    ModelFormatError,
    Output,
)

__all__ = ["OnnxPredictor"]

_DTYPES: Final = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8",
    "tensor(int8)": "int8", "tensor(bool)": "bool",
}
_FLOAT_OUTPUTS: Final = frozenset({"tensor(float)", "tensor(double)", "tensor(float16)"})


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"running an ONNX model needs {name}, which is not installed ({exc})",
            hint="pip install 'bastion-ml[models]'") from None


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


class OnnxPredictor:
    """An ONNX classifier in an onnxruntime session, as a :class:`Predictor`.

    Build with :meth:`from_bytes`.

    Args:
        session: an ``onnxruntime.InferenceSession`` with one input.
        spec: what it takes; default read from the session.
        output: what the scores are.
    """

    def __init__(self, session: Any, *, spec: InputSpec | None = None,
                 output: Output = Output.AUTO, graph: bytes | None = None) -> None:
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise CapabilityError(
                f"the ONNX model takes {len(inputs)} inputs; a predictor feeds one",
                hint="export the model with a single input tensor")
        scores = [o for o in session.get_outputs()
                  if o.type in _FLOAT_OUTPUTS and len(o.shape or ()) == 2]
        if not scores:
            raise CapabilityError(
                "the ONNX model has no (n, classes) floating-point output to read as scores",
                hint="a converted scikit-learn model needs options={'zipmap': False}")
        self._session = session
        self._input = inputs[0]
        self._output_name: str = scores[0].name
        dtype = _DTYPES.get(self._input.type)
        if dtype is None:
            raise CapabilityError(f"the ONNX input's type {self._input.type} is not supported")
        if spec is None:
            shape = tuple(_dim(d) for d in (self._input.shape or [None])[1:])
            spec = InputSpec(shape=shape, dtype=dtype, n_classes=_dim(scores[0].shape[1]))
        self._spec = spec
        self._output = _output_kind(graph, self._output_name) if output is Output.AUTO \
            else Output(output)

    @classmethod
    def from_bytes(cls, data: bytes, *, spec: InputSpec | None = None,
                   output: Output = Output.AUTO) -> Self:
        """A predictor over the ONNX model in ``data`` (nothing is read from disk).

        Raises:
            ModelFormatError: onnxruntime cannot build a session from it.
            MissingDependencyError: onnxruntime is not installed.
        """
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: the message below says what failed
        try:
            session = ort.InferenceSession(data, sess_options=options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelFormatError(
                f"onnxruntime cannot load the model: {str(exc).splitlines()[0][:300]}",
                hint="check it with onnx.checker.check_model; custom operators are not loaded",
            ) from None
        return cls(session, spec=spec, output=output, graph=data)

    @property
    def spec(self) -> InputSpec:
        """What the model takes (from the session's input)."""
        return self._spec

    @property
    def output(self) -> Output:
        """What the scores are (never ``AUTO``)."""
        return self._output

    def _scores(self, x: npt.ArrayLike) -> FloatArray:
        array = np.ascontiguousarray(self._spec.check(x))
        try:
            (out,) = self._session.run([self._output_name], {self._input.name: array})
        except Exception as exc:  # shape errors inside the graph surface here
            raise CapabilityError(
                f"the ONNX model failed on these inputs: {str(exc).splitlines()[0][:300]}",
                hint=f"it takes {self._spec.to_dict()['shape']} {self._spec.dtype} inputs",
            ) from None
        return probabilities(np.asarray(out), self._output)

    def predict(self, x: npt.ArrayLike) -> IndexArray:
        """The class index of each input (argmax of the scores)."""
        return np.asarray(self._scores(x).argmax(axis=1), dtype=np.int64)

    def predict_proba(self, x: npt.ArrayLike) -> FloatArray:
        """Class probabilities (softmax of logits, or the model's own probabilities)."""
        return self._scores(x)


def _output_kind(graph: bytes | None, name: str) -> Output:
    """Logits or probabilities: a ``Softmax``/``LogSoftmax`` producing ``name``, else its name
    (``probabilities``, as scikit-learn converters call it), else logits."""
    if graph is not None:
        try:
            onnx = importlib.import_module("onnx")
            model = onnx.load_from_string(graph)
        except Exception:  # no onnx package, or a graph it cannot parse: fall back on names
            model = None
        if model is not None:
            producers = {out: node.op_type for node in model.graph.node for out in node.output}
            op = producers.get(name)
            if op == "Softmax":
                return Output.PROBABILITIES
            if op == "LogSoftmax":
                return Output.LOG_PROBABILITIES
    lowered = name.lower()
    if "logprob" in lowered or "log_prob" in lowered:
        return Output.LOG_PROBABILITIES
    return Output.PROBABILITIES if "prob" in lowered else Output.LOGITS
