"""safetensors: validate the header in pure Python; never read the tensor data.

A safetensors file is an 8-byte little-endian header length, a JSON header mapping tensor names to
``{"dtype", "shape", "data_offsets"}`` (plus an optional ``__metadata__`` of strings), then the
data area. The format cannot carry code, so what matters is that the file is exactly what it
claims: loaders that disagree about a malformed header (parser differentials), tensors that
overlap or point outside the data, and bytes no tensor covers (room to hide a second payload, a
polyglot) are all findings.

    >>> SafetensorsScanner().formats == frozenset({Format.SAFETENSORS})
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, BinaryIO, Final

from bastion.findings import Finding, Severity
from bastion.scan.formats._finding import finding
from bastion.scan.interface import Format, Member, ScanLimits, Source

__all__ = ["DTYPE_BITS", "SafetensorsScanner"]

MAX_HEADER_BYTES: Final = 16 * 1024 * 1024
"""Headers larger than this are not parsed (the reference loader's own cap is 100 MB; real
headers of models with tens of thousands of tensors stay under a few MB)."""

DTYPE_BITS: Final[dict[str, int]] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
"""The dtypes of the safetensors specification, with their size in bits."""

_REMEDIATE: Final = (
    "Re-export the tensors with the safetensors library from a trusted copy of the model, "
    "or obtain the file again from its publisher and compare its SHA-256."
)


class _InvalidError(Exception):
    """The header breaks a rule: carries the finding to report."""

    def __init__(self, found: Finding) -> None:
        super().__init__(found.title)
        self.found = found


class SafetensorsScanner:
    """Checks a safetensors header against the specification and the file's real size."""

    formats: frozenset[Format] = frozenset({Format.SAFETENSORS})

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Yield one finding per rule the header breaks (none for a well-formed file)."""
        with source.open() as stream:
            head = stream.read(8)
            try:
                header = self._header(source, head, stream)
            except _InvalidError as bad:
                yield bad.found
                return
        yield from _check_tensors(source, header, data_start=8 + int.from_bytes(head, "little"))

    def _header(self, source: Source, head: bytes, stream: BinaryIO) -> dict[str, Any]:
        """Steps: 1. the declared length fits the file and our cap; 2. the bytes are UTF-8;
        3. they are one JSON object with no duplicate keys."""
        # 1. A length past the end of the file is the classic crash and allocation bomb.
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length <= 0 or 8 + length > source.size or length > MAX_HEADER_BYTES:
            raise _InvalidError(finding(
                source, "safetensors.header.length", Severity.HIGH,
                "safetensors header length is out of bounds",
                detail=(f"The file declares a {length}-byte header but holds {source.size} bytes "
                        f"(headers over {MAX_HEADER_BYTES} bytes are not read); a loader that "
                        "trusts the length over-reads or allocates without limit."),
                remediation=_REMEDIATE, offset=0,
                evidence={"header_length": length, "file_size": source.size},
            ))
        raw = stream.read(length)
        # 2-3. Duplicate keys are a parser differential: json keeps the last, others the first.
        duplicates: list[str] = []

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            seen: dict[str, Any] = {}
            for key, value in items:
                if key in seen:
                    duplicates.append(key)
                seen[key] = value
            return seen

        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            why = f"the header is not valid UTF-8 JSON ({exc})"
            raise _InvalidError(_bad_json(source, why)) from None
        if not isinstance(header, dict):
            raise _InvalidError(_bad_json(source, "the header is JSON but not an object"))
        if duplicates:
            raise _InvalidError(_bad_json(
                source, f"the header repeats keys {sorted(set(duplicates))[:10]}; loaders "
                "disagree about which one wins"))
        return header


def _bad_json(source: Source, why: str) -> Finding:
    return finding(
        source, "safetensors.header.json", Severity.HIGH, "safetensors header is not valid",
        detail=f"{why.capitalize()}. The reference loader refuses such a file; another may "
        "read it differently.",
        remediation=_REMEDIATE, offset=8,
    )


def _tensor_span(
    source: Source, name: str, entry: object
) -> tuple[tuple[int, int] | None, Finding | None]:
    """The byte span of one tensor (when its offsets are usable) and the finding for the first
    rule its entry breaks.

    Steps: 1. exactly the keys dtype, shape, data_offsets; 2. a shape of non-negative integers
    and two ordered, non-negative integer offsets; 3. a known dtype; 4. the span's length equals
    the element count times the dtype size.
    """
    def bad(rule: str, title: str, why: str) -> Finding:
        return finding(source, rule, Severity.HIGH, title, detail=f"Tensor {name!r}: {why}",
                       remediation=_REMEDIATE, offset=8, evidence={"tensor": name})

    # 1.
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        return None, bad("safetensors.tensor.invalid", "safetensors tensor entry is malformed",
                         "an entry must hold exactly dtype, shape and data_offsets.")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]

    # 2. bool is an int in Python but not in JSON's schema for shapes and offsets.
    def ints(value: object, count: int | None) -> bool:
        return (isinstance(value, list) and (count is None or len(value) == count)
                and all(type(v) is int and v >= 0 for v in value))

    if not ints(shape, None) or not ints(offsets, 2) or offsets[0] > offsets[1]:
        return None, bad("safetensors.tensor.invalid", "safetensors tensor entry is malformed",
                         f"shape {shape!r} or data_offsets {offsets!r} is not valid.")
    span = (offsets[0], offsets[1])
    # 3. An unknown dtype leaves the size unknowable; a loader may guess.
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        return span, bad("safetensors.dtype.unknown", "safetensors tensor has an unknown dtype",
                         f"dtype {dtype!r} is not one of the specification's.")
    # 4.
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
        return span, bad("safetensors.tensor.size", "safetensors tensor size does not match "
                         "its shape", f"shape {shape} of {dtype} needs {bits / 8:g} bytes but "
                         f"its offsets span {offsets[1] - offsets[0]}.")
    return span, None


def _check_tensors(source: Source, header: dict[str, Any], data_start: int) -> Iterator[Finding]:
    """Steps: 1. metadata is strings only; 2. each entry is valid; 3. every span lies inside the
    data area; 4. spans do not overlap; 5. together they cover the data area exactly."""
    data_size = source.size - data_start
    # 1.
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        yield finding(
            source, "safetensors.metadata.invalid", Severity.MEDIUM,
            "safetensors __metadata__ is not a string-to-string map",
            detail="The specification allows only strings in __metadata__; other values are "
            "rejected by the reference loader and may be interpreted by others.",
            remediation=_REMEDIATE, offset=8,
        )
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        # 2.
        span, problem = _tensor_span(source, name, entry)
        if problem is not None:
            yield problem
        if span is None:
            continue
        # 3.
        if span[1] > data_size:
            yield finding(
                source, "safetensors.tensor.bounds", Severity.HIGH,
                "safetensors tensor lies outside the data area",
                detail=f"Tensor {name!r} spans bytes {span[0]}-{span[1]} of a {data_size}-byte "
                "data area; a loader that trusts the offsets reads past the file.",
                remediation=_REMEDIATE, offset=data_start + span[0],
                evidence={"tensor": name, "data_offsets": list(span), "data_size": data_size},
            )
            continue
        spans.append((span[0], span[1], name))
    spans.sort()
    covered, owner = 0, ""
    for begin, end, name in spans:
        # 4.
        if begin < covered:
            yield finding(
                source, "safetensors.tensor.overlap", Severity.HIGH,
                "safetensors tensors overlap",
                detail=f"Tensor {name!r} starts at {begin}, inside bytes of tensor {owner!r}; "
                "one write changes both and loaders disagree.",
                remediation=_REMEDIATE, offset=data_start + begin,
                evidence={"tensors": sorted([owner, name]), "data_offsets": [begin, end]},
            )
        # 5. A gap between tensors is room for a hidden payload.
        elif begin > covered:
            yield _hidden(source, data_start + covered, begin - covered)
        if end > covered:
            covered, owner = end, name
    if covered < data_size:
        yield _hidden(source, data_start + covered, data_size - covered)


def _hidden(source: Source, offset: int, length: int) -> Finding:
    return finding(
        source, "safetensors.data.hidden", Severity.HIGH,
        "safetensors file holds bytes no tensor covers",
        detail=f"{length} bytes at offset {offset} belong to no tensor. The reference loader "
        "rejects such files; the bytes can hide a second payload (a polyglot file).",
        remediation=_REMEDIATE, offset=offset, evidence={"length": length},
    )
