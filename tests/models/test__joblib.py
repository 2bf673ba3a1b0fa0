"""joblib dumps load as joblib.load loads them, with every import under the policy."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from bastion.models import ModelFormatError
from bastion.models._joblib import loads
from bastion.scan.pickle import UnsafePickleError


def _dumped(obj: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()


def test_arrays_of_every_layout_round_trip() -> None:
    rng = np.random.default_rng(0)
    value = {
        "c": rng.standard_normal((3, 4)),
        "f": np.asfortranarray(rng.standard_normal((4, 3)).astype(np.float32)),
        "big_endian": np.arange(5, dtype=">i4"),
        "empty": np.zeros((0, 2)),
        "scalar": np.array(3.5),
        "objects": np.array(["a", 1, None], dtype=object),
    }
    loaded = loads(_dumped(value))
    assert loaded.keys() == value.keys()
    for key, array in value.items():
        np.testing.assert_array_equal(loaded[key], array)
        assert loaded[key].shape == array.shape
    assert loaded["f"].flags.writeable and loaded["big_endian"].dtype == np.dtype("=i4")


def test_an_estimator_round_trips(table) -> None:
    X, y = table
    lr = LogisticRegression().fit(X, y)
    np.testing.assert_array_equal(loads(_dumped(lr)).predict_proba(X), lr.predict_proba(X))


def test_a_payload_in_a_nested_object_array_is_refused(canary: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {canary}",))

    data = _dumped({"w": np.array([Payload()], dtype=object)})
    with pytest.raises(UnsafePickleError, match="system"):
        loads(data)
    assert not canary.exists()


def test_a_truncated_array_is_a_format_error() -> None:
    data = _dumped({"w": np.arange(1000, dtype=np.float64)})
    cut = data[: len(data) // 2]
    with pytest.raises(ModelFormatError, match="cut short"):
        loads(cut)


@pytest.mark.parametrize(("fields", "message"), [
    ({"subclass": np.random.RandomState}, "subclass"),  # on the allowlist, not an ndarray
    ({"dtype": "float64"}, "cannot be read"),
    ({"shape": (2, -1)}, "cannot be read"),
    ({"order": "X"}, "cannot be read"),
])
def test_odd_wrappers_are_refused(fields: dict, message: str) -> None:
    from joblib.numpy_pickle import NumpyArrayWrapper

    wrapper = NumpyArrayWrapper(np.ndarray, (2,), "C", np.dtype("float64"))
    for name, value in fields.items():
        setattr(wrapper, name, value)
    with pytest.raises(ModelFormatError, match=message):
        loads(pickle.dumps(wrapper, protocol=4))
