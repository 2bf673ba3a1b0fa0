"""Pickles that hold bytes for ``torch.storage._load_from_bytes``: how a tensor pickles outside
``torch.save`` (plain ``pickle``, joblib), and the payloads that abuse it. Built with torch."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import torch
from torch.storage import _load_from_bytes


class LoadFromBytes:
    """Pickles as ``torch.storage._load_from_bytes(data)``, exactly as a storage does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[object, ...]:
        return (_load_from_bytes, (self.data,))


class PassedOn:
    """Pickles as ``torch._tensor._rebuild_from_type_v2(_load_from_bytes, Tensor, (data,), {})``:
    the import handed to an allowed reconstructor that calls it."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[object, ...]:
        from torch._tensor import _rebuild_from_type_v2

        return (_rebuild_from_type_v2, (_load_from_bytes, torch.Tensor, (self.data,), {}))


class System:
    """Pickles as ``os.system(command)`` (``posix.system`` here)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (self.command,))


@dataclass
class Point:
    """A class of the test suite's own: not on the allowlist."""

    x: int
    y: int


def legacy(obj: object, *, protocol: int = 2) -> bytes:
    """``torch.save(obj)`` in the legacy (pre-1.6) format, which ``_load_from_bytes`` reads."""
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False, pickle_protocol=protocol)
    return buf.getvalue()


def zipped(obj: object) -> bytes:
    """``torch.save(obj)`` in today's zip format."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
