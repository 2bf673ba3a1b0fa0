"""PyTorch's legacy checkpoints: the pre-1.6 stacked format and the pre-1.0 tar records.

``torch.load`` reads a legacy file's magic number, protocol version, system info, the object
itself and the list of storage keys, each with ``pickle.load``; the storages that follow are
read as raw bytes. All five pickles are scanned (scanners that read only the first miss the
payload). In the tar variant, ``storages`` and ``tensors`` interleave pickles with raw records;
:func:`scan_tar_records` walks them as ``torch.serialization`` does. PyTorch zip checkpoints
are containers and live in :mod:`bastion.scan.formats.archives`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO, Final

from bastion.findings import Finding, Location, Severity
from bastion.scan._rules import finding
from bastion.scan.interface import Format, FormatScanner, Member, ScanLimits, Source
from bastion.scan.pickle import Policy, scan_pickles
from bastion.scan.pickle._machine import Analysis, Global, analyse
from bastion.scan.pickle._stream import judge
from bastion.scan.pickle.policy import canonical

__all__ = ["TorchLegacyScanner", "scan_tar_records"]

LEGACY_PICKLES: Final = 5
"""magic number, protocol version, sys info, the object, storage keys."""


@dataclass(frozen=True, slots=True)
class TorchLegacyScanner:
    """The five pickles of ``torch.save(..., _use_new_zipfile_serialization=False)``."""

    policy: Policy = field(default_factory=Policy.default)
    formats: frozenset[Format] = frozenset({Format.TORCH_LEGACY})

    def with_policy(self, policy: Policy) -> FormatScanner:
        """This scanner under ``policy``."""
        return replace(self, policy=policy)

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Scan the pickles ``torch.load`` would unpickle; the storage bytes after them are data."""
        with source.open() as stream:
            yield from scan_pickles(stream, source.location, limits, self.policy,
                                    end=source.size, count=LEGACY_PICKLES)


_ELEMENT_SIZE: Final = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8,
    "QUInt8Storage": 1, "QInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1,
}


class _RecordError(Exception):
    """The records stop making sense here."""


def scan_tar_records(
    kind: str, stream: BinaryIO, source: Source, limits: ScanLimits, policy: Policy
) -> Iterator[Finding]:
    """Scan a tar checkpoint's ``storages`` or ``tensors`` member as ``torch.load`` reads it.

    ``storages``: pickle(count), then per storage pickle((key, location, storage_type)),
    int64 element count and the raw elements; then pickle(storage views).
    ``tensors``: pickle(count), then per tensor pickle((key, storage_id, type)), int32 ndim,
    4 bytes, ndim int64 sizes, ndim int64 strides and an int64 offset.
    """
    records = _Records(stream, source, limits, policy)
    try:
        count = records.pickle()
        if type(count) is not int or not 0 <= count <= limits.max_members:
            raise _RecordError(f"the record count {count!r} is not a sensible number")
        for _ in range(count):
            header = records.pickle()
            if kind == "storages":
                records.skip(records.int64() * _element_size(header))
            else:
                ndim = records.int32()
                if not 0 <= ndim <= 64:
                    raise _RecordError(f"a tensor claims {ndim} dimensions")
                records.skip(4 + 16 * ndim + 8)
        if kind == "storages":
            records.pickle()  # the storage views
    except _RecordError as exc:
        yield finding(
            "torch.tar.malformed", Severity.HIGH, f"{kind}: {exc}",
            Location(source.location.path, source.location.member, records.pos),
            detail="torch.load stops here; whatever it unpickled before has already run, and "
            "the rest of the member was not scanned.",
        )
    yield from records.findings


def _element_size(header: object) -> int:
    storage_type = header[2] if type(header) is tuple and len(header) == 3 else None
    if type(storage_type) is Global:
        module, name = canonical(storage_type.module, storage_type.name, storage_type.proto)
        if module == "torch" and name in _ELEMENT_SIZE:
            return _ELEMENT_SIZE[name]
    raise _RecordError("a storage's type is not a PyTorch storage class")


class _Records:
    """A cursor over interleaved pickles and raw fields; collects the pickles' findings."""

    def __init__(self, stream: BinaryIO, source: Source, limits: ScanLimits, policy: Policy):
        self.stream, self.source, self.limits, self.policy = stream, source, limits, policy
        self.pos, self.index = 0, 0
        self.findings: list[Finding] = []

    def pickle(self) -> object:
        a: Analysis = analyse(self.stream, self.pos, self.source.size,
                              max_ops=self.limits.max_pickle_ops, max_memo=self.limits.max_memo,
                              timeout_s=self.limits.timeout_s)
        self.findings.extend(judge(a, self.index, self.source.location, self.policy))
        self.index += 1
        if not a.complete:
            raise _RecordError("a record's pickle is broken")
        self.pos = a.end
        return a.result

    def _raw(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        self.stream.seek(self.pos)
        data = self.stream.read(size)
        if len(data) != size:
            raise _RecordError("the member ends inside a record")
        self.pos += size
        value: int = struct.unpack(fmt, data)[0]
        return value

    def int64(self) -> int:
        value = self._raw("<q")
        if value < 0:
            raise _RecordError("a negative element count")
        return value

    def int32(self) -> int:
        return self._raw("<i")

    def skip(self, n: int) -> None:
        if n > self.source.size - self.pos:
            raise _RecordError(f"a record of {n} bytes runs past the end of the member")
        self.pos += n
