"""Pickle and joblib files: joblib's inline arrays are skipped the way joblib reads them."""

from __future__ import annotations

import io
import os
import pickle

import joblib
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.findings import Finding, Location
from bastion.scan import ScanLimits
from bastion.scan.formats.pickle import PickleScanner
from bastion.scan.interface import Source


def run(data: bytes) -> list[Finding]:
    source = Source(Location("x"), len(data), lambda: io.BytesIO(data))
    return [f for f in PickleScanner().scan(source, ScanLimits()) if isinstance(f, Finding)]


def dump(obj: object) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def test_joblib_inline_arrays_of_every_kind_are_skipped_exactly() -> None:
    obj = {"f": np.ones((7, 3)), "i": np.arange(5, dtype=np.int8), "u": np.array(["ab", "c"]),
           "e": np.zeros(0), "s": np.float32(1), "fo": np.asfortranarray(np.ones((3, 2))),
           "o": np.array([1, "x", None], dtype=object), "after": [1, 2, 3]}
    assert run(dump(obj)) == []


def test_payload_after_joblib_arrays_is_found(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'CANARY'}",)

    rules = [f.rule for f in run(dump({"a": np.ones(1000), "z": Evil()}))]
    assert rules == ["pickle.global.dangerous"]


def test_unreadable_array_layout_stops_with_a_finding() -> None:
    data = dump({"a": np.ones(10)}).replace(b"shape", b"shapf")
    assert [f.rule for f in run(data)] == ["joblib.array.undetermined"]


def test_trailing_bytes_after_the_last_pickle() -> None:
    rules = [f.rule for f in run(pickle.dumps([1]) + b"\xff\xfe garbage")]
    assert rules == ["pickle.trailing-data"]


_JOBLIB = dump({"a": np.arange(12.0), "o": np.array([None, "s"], dtype=object)})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_JOBLIB) - 1), st.integers(0, 255)), max_size=6))
def test_fuzz_mutated_joblib_never_raises(mutations) -> None:
    data = bytearray(_JOBLIB)
    for pos, value in mutations:
        data[pos] = value
    for f in run(bytes(data)):
        assert isinstance(f, Finding)


def test_pickle_hidden_in_joblib_array_bytes(tmp_path, canary, monkeypatch) -> None:
    """joblib skips array bytes; pickle.load would run them. Both readings are scanned."""
    import pytest
    from joblib import numpy_pickle

    from bastion.scan.pickle import UnsafePickleError, restricted

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {canary}",)

    init = numpy_pickle.NumpyArrayWrapper.__init__

    def unaligned(self, *args, **kwargs) -> None:  # as joblib < 1.2 wrote arrays
        init(self, *args, **kwargs)
        del self.numpy_array_alignment_bytes

    monkeypatch.setattr(numpy_pickle.NumpyArrayWrapper, "__init__", unaligned)
    payload = np.frombuffer(pickle.dumps(Evil(), protocol=2), dtype=np.uint8)
    path = tmp_path / "model.joblib"
    joblib.dump({"coef": payload}, path)
    monkeypatch.undo()
    assert (joblib.load(path)["coef"] == payload).all()  # joblib sees an array
    with pytest.raises(UnsafePickleError, match=r"posix\.system"):  # pickle.load sees a call
        restricted.loads(path.read_bytes())
    found = run(path.read_bytes())
    assert [(f.rule, f.evidence["global"]) for f in found] == [
        ("joblib.array.hidden-pickle", "posix.system")
    ]
    assert not canary.exists()
