"""InputSpec checks itself and the inputs it is given; the capability protocols are structural."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.errors import BastionError
from bastion.findings import Finding, Principle, Severity
from bastion.models import (
    CapabilityError,
    Differentiable,
    InputSpec,
    InputSpecError,
    ModelError,
    Predictor,
    Representable,
    UnsafeModelError,
)


def test_spec_normalises_and_derives() -> None:
    spec = InputSpec(shape=[3, None], dtype=np.float64, value_range=(0, 1), labels=["a", "b"])
    assert spec.shape == (3, None) and spec.dtype == "float64"
    assert spec.value_range == (0.0, 1.0) and spec.n_classes == 2
    assert spec.label(1) == "b" and InputSpec(n_classes=3).label(2) == 2
    assert spec.to_dict() == {"shape": [3, None], "dtype": "float64", "value_range": [0.0, 1.0],
                              "n_classes": 2, "labels": ["a", "b"]}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"shape": (0,)}, "positive sizes"),
    ({"shape": (2.5,)}, "positive sizes"),
    ({"dtype": "no-such-dtype"}, "not a NumPy dtype"),
    ({"value_range": (1.0, 0.0)}, "low < high"),
    ({"value_range": (0.0, float("inf"))}, "low < high"),
    ({"labels": ("a", "a")}, "distinct"),
    ({"labels": ("a", "b"), "n_classes": 3}, "2 labels for 3 classes"),
    ({"n_classes": 0}, "at least one class"),
])
def test_malformed_specs_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(InputSpecError, match=message):
        InputSpec(**kwargs)


def test_check_converts_and_refuses_wrong_shapes() -> None:
    spec = InputSpec(shape=(2, None))
    out = spec.check([[[1, 2, 3], [4, 5, 6]]])
    assert out.dtype == np.float32 and out.shape == (1, 2, 3)
    with pytest.raises(InputSpecError, match=r"\(n, 2, \?\)") as err:
        spec.check(np.zeros((2, 3)))
    assert "x[None]" in str(err.value)
    with pytest.raises(InputSpecError, match=r"do(es)? not convert"):
        spec.check([["a", "b"]])
    with pytest.raises(InputSpecError, match="batch axis"):
        InputSpec().check(3.0)
    assert InputSpec().check([[1, 2], [3, 4]]).shape == (2, 2)


def test_errors_are_bastion_errors_and_unsafe_exits_1() -> None:
    finding = Finding(rule="x.y", severity=Severity.HIGH, title="t", principle=Principle.P2_2)
    err = UnsafeModelError("refused", findings=[finding], hint="h")
    assert isinstance(err, ModelError) and isinstance(err, BastionError)
    assert err.exit_code == 1 and err.findings == (finding,) and str(err) == "refused (h)"
    assert CapabilityError("c").exit_code == 2


def test_capabilities_are_structural() -> None:
    class Minimal:
        spec = InputSpec()

        def predict(self, x: object) -> np.ndarray:
            return np.zeros(1, dtype=np.int64)

        def predict_proba(self, x: object) -> np.ndarray:
            return np.ones((1, 1))

    assert isinstance(Minimal(), Predictor)
    assert not isinstance(Minimal(), Differentiable | Representable)
    assert not isinstance(object(), Predictor)
