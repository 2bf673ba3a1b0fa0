"""NumPy ``.npy``: a header, then raw array bytes, or a pickle when the dtype holds objects.

``numpy.load(allow_pickle=True)`` unpickles object arrays; the pickle after the header is
scanned like any other. Raw data is never read: its size is checked against the header.
"""

from __future__ import annotations

import ast
import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Final

from bastion.findings import Finding, Severity
from bastion.scan._rules import finding
from bastion.scan.interface import Format, FormatScanner, Member, ScanLimits, Source
from bastion.scan.pickle import Policy, scan_pickles

__all__ = ["NumpyScanner"]

_MAX_HEADER: Final = 10_000
"""numpy.load's own default ``max_header_size``; larger headers are refused by NumPy."""


_PLAIN_DESCR: Final = re.compile(r"[<>|=]?(?:b1|[iu][1248]|f[248]|c(?:8|16))")
"""The dtypes ``np.save`` writes for bool, integer, float and complex arrays: a byte order and
a kind whose item size is its number (``numpy.dtype`` accepts each one; a test holds every
spelling to NumPy's own answer). Anything else is NumPy's to read."""


class _BadHeaderError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Dtype:
    """What the scan needs of a dtype: its item size and whether it holds objects."""

    itemsize: int
    hasobject: bool


def _dtype(descr: object) -> _Dtype:
    """The dtype a header's ``descr`` names, as ``numpy.lib.format.descr_to_dtype`` reads it.

    A plain numeric descr is read here: importing NumPy costs more than scanning a directory of
    arrays. Structured, string, datetime and object dtypes go to NumPy, which raises
    ``TypeError`` / ``ValueError`` for a descr it refuses.
    """
    if type(descr) is str and _PLAIN_DESCR.fullmatch(descr):
        return _Dtype(int(descr.lstrip("<>|=")[1:]), hasobject=False)
    from numpy.lib import format as npformat  # imported on first use: numpy is slow to load

    dtype = npformat.descr_to_dtype(descr)  # type: ignore[arg-type]  # NumPy validates it
    return _Dtype(dtype.itemsize, bool(dtype.hasobject))


@dataclass(frozen=True, slots=True)
class NumpyScanner:
    """Scans ``.npy`` files: header sanity, data size, and the pickle of object arrays."""

    policy: Policy = field(default_factory=Policy.default)
    formats: frozenset[Format] = frozenset({Format.NUMPY})

    def with_policy(self, policy: Policy) -> FormatScanner:
        """This scanner under ``policy``."""
        return replace(self, policy=policy)

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Read the header; scan the pickle of an object array; check the data size."""
        loc = source.location
        with source.open() as stream:
            try:
                header, data_offset = _read_header(stream.read(12 + _MAX_HEADER))
                dtype = _dtype(header["descr"])
                shape = tuple(header["shape"])
                if not all(type(d) is int and d >= 0 for d in shape):
                    raise _BadHeaderError("shape is not a tuple of sizes")
            except (_BadHeaderError, KeyError, TypeError, ValueError, SyntaxError, MemoryError,
                    RecursionError) as exc:
                yield finding(
                    "numpy.header.invalid", Severity.HIGH, f"the .npy header is invalid: {exc}",
                    replace(loc, offset=0),
                    detail="NumPy refuses this file, and what another reader would make of it "
                    "is unknown.",
                )
                return
            if dtype.hasobject:
                yield finding(
                    "numpy.object-array", Severity.LOW,
                    "object array: numpy.load(allow_pickle=True) unpickles its contents",
                    replace(loc, offset=data_offset),
                    detail="The array is stored as a pickle; its contents are scanned below.",
                    remediation="Prefer numeric dtypes; load with allow_pickle=False.",
                )
                yield from scan_pickles(stream, loc, limits, self.policy, start=data_offset,
                                        end=source.size, count=1)
                return
        expected = math.prod(shape) * dtype.itemsize
        actual = source.size - data_offset
        if actual < expected:
            yield finding(
                "numpy.data.truncated", Severity.MEDIUM,
                f"the array needs {expected} bytes of data but only {actual} follow the header",
                replace(loc, offset=data_offset), evidence={"expected": expected, "actual": actual},
            )
        elif actual > expected:
            yield finding(
                "numpy.trailing-data", Severity.LOW,
                f"{actual - expected} bytes follow the array data",
                replace(loc, offset=data_offset + expected),
                detail="numpy.load ignores them; another reader might not.",
                evidence={"bytes": actual - expected},
            )


def _read_header(head: bytes) -> tuple[dict[str, Any], int]:
    if len(head) < 10 or not head.startswith(b"\x93NUMPY"):
        raise _BadHeaderError("no NumPy magic")
    major = head[6]
    if major == 1:
        (length,), start = struct.unpack("<H", head[8:10]), 10
    elif major in (2, 3):
        if len(head) < 12:
            raise _BadHeaderError("truncated")
        (length,), start = struct.unpack("<I", head[8:12]), 12
    else:
        raise _BadHeaderError(f"unknown format version {major}")
    if length > _MAX_HEADER:
        raise _BadHeaderError(f"header of {length} bytes is larger than NumPy accepts")
    raw = head[start:start + length]
    if len(raw) != length:
        raise _BadHeaderError("truncated")
    text = raw.decode("utf-8" if major == 3 else "latin-1")
    value = ast.literal_eval(text)  # literals only: never evaluates code
    if not isinstance(value, dict):
        raise _BadHeaderError("header is not a dict")
    return value, start + length
