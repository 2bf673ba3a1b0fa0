"""OnnxPredictor: spec from the session, scores read right (logits or probabilities)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto
from tests.models.onnx_models import linear, reference_logits, typed

from bastion.models import (
    CapabilityError,
    Differentiable,
    InputSpec,
    InputSpecError,
    ModelFormatError,
    OnnxPredictor,
    Output,
    Predictor,
    Representable,
)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_logits_model(x) -> None:
    p = OnnxPredictor.from_bytes(linear(output="scores"))
    assert isinstance(p, Predictor) and not isinstance(p, Differentiable | Representable)
    assert p.spec == InputSpec(shape=(4,), dtype="float32", n_classes=2)
    assert p.output is Output.LOGITS
    expected = reference_logits(x)
    assert p.predict(x).tolist() == expected.argmax(1).tolist()
    np.testing.assert_allclose(p.predict_proba(x), _softmax(expected), rtol=1e-5)


@pytest.mark.parametrize(("kwargs", "kind"), [
    ({"softmax": True, "output": "out"}, Output.PROBABILITIES),  # read from the Softmax node
    ({"output": "probabilities"}, Output.PROBABILITIES),          # named so (sklearn converters)
    ({"output": "log_probs"}, Output.LOG_PROBABILITIES),
])
def test_output_kind_is_read(kwargs: dict, kind: Output, x) -> None:
    assert OnnxPredictor.from_bytes(linear(**kwargs)).output is kind


def test_softmax_output_is_used_as_is(x) -> None:
    p = OnnxPredictor.from_bytes(linear(softmax=True))
    np.testing.assert_allclose(p.predict_proba(x), _softmax(reference_logits(x)), rtol=1e-5)
    forced = OnnxPredictor.from_bytes(linear(), output=Output.PROBABILITIES)
    np.testing.assert_allclose(forced.predict_proba(x), reference_logits(x), rtol=1e-5)


def test_fixed_batch_and_wrong_inputs(x) -> None:
    p = OnnxPredictor.from_bytes(linear(batch=7))
    assert p.spec.shape == (4,) and p.predict(x).shape == (7,)
    with pytest.raises(CapabilityError, match="failed on these inputs"):
        p.predict(x[:3])
    with pytest.raises(InputSpecError, match=r"\(n, 4\)"):
        p.predict(x[:, :3])


def test_what_cannot_be_fed_is_refused() -> None:
    with pytest.raises(CapabilityError, match="takes 2 inputs"):
        OnnxPredictor.from_bytes(linear(inputs=2))
    with pytest.raises(ModelFormatError, match="onnxruntime cannot load"):
        OnnxPredictor.from_bytes(b"\x08\x07garbage that is not a graph")


def test_types_a_predictor_cannot_use() -> None:
    with pytest.raises(CapabilityError, match="no \\(n, classes\\) floating-point output"):
        OnnxPredictor.from_bytes(typed(TensorProto.FLOAT, TensorProto.INT64))
    with pytest.raises(CapabilityError, match=r"tensor\(uint16\) is not supported"):
        OnnxPredictor.from_bytes(typed(TensorProto.UINT16, TensorProto.FLOAT))
    double = OnnxPredictor.from_bytes(typed(TensorProto.DOUBLE, TensorProto.FLOAT))
    assert double.spec.dtype == "float64" and double.spec.n_classes == 4
