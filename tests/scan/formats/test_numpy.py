"""NumPy .npy: headers are parsed as literals, data sizes checked, object arrays scanned."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.findings import Finding, Location
from bastion.scan import ScanLimits
from bastion.scan.formats.numpy import _PLAIN_DESCR, NumpyScanner, _dtype
from bastion.scan.interface import Source


def run(data: bytes) -> list[Finding]:
    source = Source(Location("x.npy"), len(data), lambda: io.BytesIO(data))
    return [f for f in NumpyScanner().scan(source, ScanLimits()) if isinstance(f, Finding)]


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def test_numeric_array_is_clean() -> None:
    assert run(npy(np.ones((3, 4), dtype=np.float16))) == []


@pytest.mark.parametrize("order", ["", "<", ">", "|", "="])
@pytest.mark.parametrize("kind", ["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2",
                                  "f4", "f8", "c8", "c16"])
def test_plain_descrs_read_without_numpy_as_numpy_reads_them(order: str, kind: str) -> None:
    descr = order + kind
    assert _PLAIN_DESCR.fullmatch(descr)
    mine, theirs = _dtype(descr), np.dtype(descr)
    assert (mine.itemsize, mine.hasobject) == (theirs.itemsize, theirs.hasobject)


@pytest.mark.parametrize("descr", ["|O", "<U7", "|S3", "<M8[ns]", "<f4\n", " <f4", "f16", "<i3",
                                   [("a", "<f4"), ("b", "|O")], [("a", "<i2", (3,))]])
def test_other_descrs_are_numpys_to_read(descr: object) -> None:
    assert not (isinstance(descr, str) and _PLAIN_DESCR.fullmatch(descr))
    try:
        theirs = np.lib.format.descr_to_dtype(descr)
    except (TypeError, ValueError):
        with pytest.raises((TypeError, ValueError)):
            _dtype(descr)
        return
    mine = _dtype(descr)
    assert (mine.itemsize, mine.hasobject) == (theirs.itemsize, theirs.hasobject)


def test_truncated_and_trailing_data() -> None:
    data = npy(np.ones(100))
    assert [f.rule for f in run(data[:-8])] == ["numpy.data.truncated"]
    assert [f.rule for f in run(data + b"extra")] == ["numpy.trailing-data"]


def test_header_code_is_never_evaluated(tmp_path) -> None:
    canary = tmp_path / "CANARY"
    header = f"__import__('os').system('touch {canary}')".encode()
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    assert [f.rule for f in run(data)] == ["numpy.header.invalid"]
    assert not canary.exists()


@pytest.mark.parametrize("header", [b"{'descr': '<f8'}", b"{'descr': 'zz', 'shape': (1,)}",
                                    b"[1, 2]", b"{'descr': '<f8', 'shape': (-1,)}",
                                    b"((((((((((((((((((((((((((((((((((((("])
def test_bad_headers(header: bytes) -> None:
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    assert [f.rule for f in run(data)] == ["numpy.header.invalid"]


def test_object_array_payload(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'CANARY'}",)

    rules = [f.rule for f in run(npy(np.array([Evil()], dtype=object)))]
    assert rules[0] == "pickle.global.dangerous" or "pickle.global.dangerous" in rules
    assert "numpy.object-array" in rules
    assert not (tmp_path / "CANARY").exists()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_headers_never_raise(tail: bytes) -> None:
    for f in run(b"\x93NUMPY" + tail):
        assert isinstance(f, Finding)
