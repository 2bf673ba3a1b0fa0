"""GGUF (llama.cpp): walk the header, metadata and tensor infos with bounds; review chat templates.

GGUF carries no code, but two things in it are trusted by loaders: declared lengths and counts
(crafted ones have overflowed llama.cpp's parser, e.g. CVE-2024-25664..25668), and the Jinja chat
templates under ``tokenizer.chat_template*``, which inference servers render: a template that
reaches Python internals runs code on the server (CVE-2024-34359 in llama-cpp-python). Every
length is checked against the bytes left before it is used; strings and arrays not needed are
skipped by seeking, so the cost is proportional to the number of metadata entries.

    >>> GGUFScanner().formats == frozenset({Format.GGUF})
    True
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, Final

from bastion.findings import Finding, Severity
from bastion.scan.formats._finding import CODE_EXECUTION, SUPPLY_CHAIN, finding
from bastion.scan.formats._jinja import review
from bastion.scan.interface import Format, Member, ScanLimits, Source

__all__ = ["GGUFScanner", "template_findings"]

_MAGIC: Final = b"GGUF"
_SUPPORTED: Final = (2, 3)
_STRING: Final = 8
_ARRAY: Final = 9
# Fixed sizes of the scalar value types (GGUF specification, gguf_type).
_SCALAR: Final = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_MAX_KEY: Final = 65_536
_MAX_TEMPLATE: Final = 4 * 1024 * 1024
_MAX_ARRAY_DEPTH: Final = 3
_MAX_DIMS: Final = 4  # GGML_MAX_DIMS
_MAX_TENSOR_NAME: Final = 64  # GGML_MAX_NAME, names this long or longer are rejected by ggml
_TEMPLATE_KEY: Final = "tokenizer.chat_template"

_TEMPLATE_RULES: Final = {
    "template.internals": (Severity.CRITICAL, "chat template reaches Python internals"),
    "template.dynamic-name": (Severity.HIGH, "chat template assembles attribute names"),
    "template.loads": (Severity.MEDIUM, "chat template loads other templates"),
    "template.syntax": (Severity.MEDIUM, "chat template cannot be parsed"),
}
"""Severity and title of each :mod:`._jinja` rule, shared by every format with chat templates."""
_REMEDIATE: Final = (
    "Do not serve this model with its embedded chat template; obtain the file from its "
    "publisher again, or replace the template with a reviewed one."
)


class _MalformedError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class _Reader:
    """Reads GGUF scalars from a stream, refusing to run past the end of the file."""

    def __init__(self, stream: BinaryIO, size: int, order: str) -> None:
        self.stream, self.size, self.order, self.pos = stream, size, order, 0

    def left(self) -> int:
        return self.size - self.pos

    def read(self, n: int) -> bytes:
        if n > self.left():
            raise _MalformedError(f"{n} bytes declared but only {self.left()} remain", self.pos)
        data = self.stream.read(n)
        if len(data) != n:
            raise _MalformedError("file ends early", self.pos)
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if n > self.left():
            raise _MalformedError(f"{n} bytes declared but only {self.left()} remain", self.pos)
        self.pos += n
        self.stream.seek(self.pos)

    def uint(self, width: int) -> int:
        fmt = {4: "I", 8: "Q"}[width]
        value: int = struct.unpack(self.order + fmt, self.read(width))[0]
        return value

    def string(self, limit: int | None) -> tuple[bytes | None, int]:
        """A length-prefixed string: its bytes (``None`` when skipped) and where it starts."""
        length = self.uint(8)
        at = self.pos
        if limit is None:
            self.skip(length)
            return None, at
        if length > limit:
            raise _MalformedError(f"string of {length} bytes exceeds the {limit}-byte limit", at)
        return self.read(length), at


class GGUFScanner:
    """Parses GGUF v2/v3 metadata and tensor infos, and reviews embedded chat templates."""

    formats: frozenset[Format] = frozenset({Format.GGUF})

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Steps: 1. magic and version; 2. counts bounded by the bytes left; 3. every metadata
        value walked; 4. every chat template reviewed; 5. tensor infos checked."""
        findings: list[Finding] = []
        with source.open() as stream:
            try:
                self._parse(source, stream, findings)
            except _MalformedError as exc:
                findings.append(finding(
                    source, "gguf.malformed", Severity.HIGH, "GGUF file is malformed",
                    detail=f"{exc} (at byte {exc.offset}). A loader that trusts the declared "
                    "sizes can over-read or over-allocate; nothing after this point was checked.",
                    remediation="Obtain the file again from its publisher and compare its SHA-256.",
                    offset=exc.offset,
                ))
        yield from findings

    def _parse(self, source: Source, stream: BinaryIO, findings: list[Finding]) -> None:
        head = stream.read(8)
        # 1. The version also tells the byte order: a big-endian file reads as 0x03000000.
        if len(head) < 8 or head[:4] != _MAGIC:
            raise _MalformedError("not a GGUF header", 0)
        little, big = struct.unpack("<I", head[4:])[0], struct.unpack(">I", head[4:])[0]
        order = "<" if little in _SUPPORTED or big not in _SUPPORTED else ">"
        version = little if order == "<" else big
        if version not in _SUPPORTED:
            findings.append(finding(
                source, "gguf.version", Severity.MEDIUM, f"GGUF version {version} is not supported",
                detail="Only GGUF versions 2 and 3 are parsed; this file's metadata and templates "
                "were not checked.",
                remediation="Convert the model to GGUF v3 with llama.cpp's tools.", offset=4,
                evidence={"version": version},
            ))
            return
        reader = _Reader(stream, source.size, order)
        reader.pos = 8
        # 2. Each tensor info takes at least 24 bytes and each key/value at least 12.
        tensors, entries = reader.uint(8), reader.uint(8)
        if tensors * 24 + entries * 12 > reader.left():
            raise _MalformedError(f"{tensors} tensors and {entries} metadata entries cannot fit in "
                             f"{reader.left()} bytes", 8)
        alignment = 32
        seen: set[str] = set()
        for _ in range(entries):
            # 3.
            raw_key, key_at = reader.string(_MAX_KEY)
            key = _utf8(raw_key or b"", key_at)
            if key in seen:
                findings.append(finding(
                    source, "gguf.metadata.duplicate", Severity.MEDIUM,
                    "GGUF metadata key appears twice",
                    detail=f"Key {key!r} is repeated; loaders disagree about which value wins.",
                    remediation="Obtain the file again from its publisher.", offset=key_at,
                    evidence={"key": key},
                ))
            seen.add(key)
            value_type = reader.uint(4)
            wanted = key == _TEMPLATE_KEY or key.startswith(_TEMPLATE_KEY + ".")
            if wanted and value_type == _STRING:
                # 4.
                raw, at = reader.string(_MAX_TEMPLATE)
                findings.extend(template_findings(source, key, _utf8(raw or b"", at), at))
            elif key == "general.alignment" and value_type == 4:
                alignment = reader.uint(4)
                if alignment == 0 or alignment & (alignment - 1):
                    raise _MalformedError(f"general.alignment {alignment} is not a power of two",
                                     reader.pos - 4)
            else:
                _skip_value(reader, value_type, 0)
        # 5.
        self._tensors(source, reader, tensors, alignment, findings)

    def _tensors(self, source: Source, reader: _Reader, count: int, alignment: int,
                 findings: list[Finding]) -> None:
        names: set[bytes] = set()
        spans: list[tuple[bytes, int, int]] = []
        for _ in range(count):
            name, at = reader.string(1 << 16)
            dims = reader.uint(4)
            if dims > _MAX_DIMS:
                raise _MalformedError(f"tensor declares {dims} dimensions (ggml allows 4)", at)
            shape = [reader.uint(8) for _ in range(dims)]
            reader.uint(4)  # ggml type: its block size is ggml's business, not ours
            offset = reader.uint(8)
            problem = None
            if name is None or len(name) >= _MAX_TENSOR_NAME or name in names:
                problem = f"tensor name {name!r} is too long or repeated"
            elif any(d >= 1 << 62 for d in shape) or _product(shape) >= 1 << 63:
                problem = f"tensor {name!r} shape {shape} overflows 64 bits"
            elif offset % alignment:
                problem = f"tensor {name!r} offset {offset} is not {alignment}-aligned"
            if problem:
                findings.append(_tensor_finding(source, problem, at))
            names.add(name or b"")
            spans.append((name or b"", offset, at))
        # Tensor data starts after the tensor infos, at the next multiple of the alignment.
        data_start = -(-reader.pos // alignment) * alignment
        for name, offset, at in spans:
            if data_start + offset > source.size:
                findings.append(_tensor_finding(
                    source, f"tensor {name!r} data starts at {data_start + offset}, past the "
                    f"end of the {source.size}-byte file", at))


def _product(values: list[int]) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def _utf8(raw: bytes, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _MalformedError("a string is not valid UTF-8", offset) from None


def _skip_value(reader: _Reader, value_type: int, depth: int) -> None:
    """Skip one value, checking every declared count against the bytes left."""
    if value_type in _SCALAR:
        reader.skip(_SCALAR[value_type])
    elif value_type == _STRING:
        reader.string(None)
    elif value_type == _ARRAY and depth < _MAX_ARRAY_DEPTH:
        item_type, count = reader.uint(4), reader.uint(8)
        if item_type in _SCALAR:
            if count * _SCALAR[item_type] > reader.left():
                raise _MalformedError(f"array of {count} items cannot fit", reader.pos)
            reader.skip(count * _SCALAR[item_type])
            return
        if count * 8 > reader.left():  # every string or nested array takes at least 8 bytes
            raise _MalformedError(f"array of {count} items cannot fit", reader.pos)
        for _ in range(count):
            _skip_value(reader, item_type, depth + 1)
    else:
        raise _MalformedError(f"unknown or too deeply nested value type {value_type}", reader.pos)


def template_findings(source: Source, key: str, text: str, offset: int, *,
                      prefix: str = "gguf", label: str = "GGUF") -> Iterator[Finding]:
    """One finding per kind of issue in one template, with every name involved as evidence.

    Rule ids are ``<prefix>.template.<rule>``: the same review and severities for a template in
    GGUF metadata and in a Hugging Face tokenizer config.
    """
    by_rule: dict[str, list[str]] = {}
    for issue in review(text):
        by_rule.setdefault(issue.rule, []).append(f"line {issue.line}: {issue.message}")
    for rule, messages in by_rule.items():
        severity, title = _TEMPLATE_RULES[rule]
        yield finding(
            source, f"{prefix}.{rule}", severity, f"{label} {title}",
            detail=f"{key}: {messages[0]}. Servers render this template for every request; "
            "a template that reaches Python objects can escape to the operating system.",
            remediation=_REMEDIATE, offset=offset,
            evidence={"key": key, "issues": messages[:20]},
            techniques=CODE_EXECUTION if severity >= Severity.HIGH else SUPPLY_CHAIN,
        )


def _tensor_finding(source: Source, problem: str, offset: int) -> Finding:
    return finding(
        source, "gguf.tensor.invalid", Severity.HIGH, "GGUF tensor info is invalid",
        detail=f"{problem.capitalize()}; llama.cpp rejects or mis-reads such tensors.",
        remediation="Obtain the file again from its publisher and compare its SHA-256.",
        offset=offset,
    )
