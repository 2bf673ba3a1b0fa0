"""ONNX: walk the ModelProto with the bounded wire reader; never load weights or external data.

ONNX graphs are data, but two things in them reach outside the model: tensors whose bytes live in
an external file named by a ``location`` (an absolute path or ``..`` turns loading into reading
any file the process can, CVE-2022-25882 and CVE-2024-27318), and operators from domains outside
the standard ones, which only run if the loader registers a native custom-op library. Subgraphs
(``If``/``Loop``/``Scan`` bodies, training graphs, local functions) hold the same constructs, so
every graph is walked, breadth first with an explicit depth bound, not by recursion.

    >>> OnnxScanner().formats == frozenset({Format.ONNX})
    True
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import BinaryIO, Final

from bastion.findings import Finding, Severity
from bastion.scan.formats._finding import CODE_EXECUTION, SUPPLY_CHAIN, finding
from bastion.scan.formats._protobuf import LENGTH, VARINT, WireError, WireField, fields, read_text
from bastion.scan.interface import Format, Member, ScanLimits, Source

__all__ = ["KNOWN_DOMAINS", "OnnxScanner"]

KNOWN_DOMAINS: Final = frozenset({
    "", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
    # Contrib operators compiled into ONNX Runtime itself: no extra library is loaded.
    "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental", "com.ms.internal.nhwc",
})
"""Operator domains whose kernels ship with ONNX and ONNX Runtime."""

_MAX_DEPTH: Final = 16  # protobuf itself refuses messages nested ~100 levels (33 graphs)
_MAX_FIELDS: Final = 20_000_000
_MAX_NAME: Final = 1 << 16
_WINDOWS_ABS: Final = re.compile(r"^[A-Za-z]:|^[\\/]{2}")


@dataclass(slots=True)
class _Walk:
    """What the walk has seen so far."""

    nodes: dict[str, set[str]] = field(default_factory=dict)
    """Operator types used, by domain."""
    functions: set[tuple[str, str]] = field(default_factory=set)
    """Model-local functions (domain, name): nodes calling them need no native code."""
    external: list[tuple[str, int]] = field(default_factory=list)
    """External-data locations and where each is declared."""
    external_missing: list[int] = field(default_factory=list)
    """Tensors marked external with no location."""
    fields_seen: int = 0


class OnnxScanner:
    """Finds external-data paths that escape the model and operators needing native libraries."""

    formats: frozenset[Format] = frozenset({Format.ONNX})

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Steps: 1. walk every graph (bounded); 2. judge external-data locations; 3. judge
        operator domains against the standard ones and the model's own functions."""
        walk = _Walk()
        with source.open() as stream:
            try:
                limit_hit = _walk(stream, source.size, walk)
            except WireError as exc:
                yield finding(
                    source, "onnx.malformed", Severity.HIGH, "ONNX model is malformed",
                    detail=f"The protobuf structure is broken ({exc}); what follows was not "
                    "checked, and loaders may read it differently.",
                    remediation="Re-export the model from its source framework.",
                    offset=exc.offset,
                )
                limit_hit = None
        if limit_hit:
            yield finding(
                source, "onnx.limit", Severity.HIGH, "ONNX model exceeds the scanner's limits",
                detail=f"{limit_hit}; the rest of the model was not checked.",
                remediation="Review the model by hand or simplify it.",
            )
        yield from _external_findings(source, walk)
        yield from _domain_findings(source, walk)


def _walk(stream: BinaryIO, size: int, walk: _Walk) -> str | None:
    """Walk the model breadth first; return why it stopped early, or ``None``."""
    queue: deque[tuple[str, int, int, int]] = deque([("model", 0, size, 0)])
    while queue:
        kind, start, end, depth = queue.popleft()
        if depth > _MAX_DEPTH:
            return f"graphs are nested more than {_MAX_DEPTH} deep"
        strings: dict[int, str] = {}
        location: tuple[str, int] | None = None
        external = False
        for f in fields(stream, start, end):
            walk.fields_seen += 1
            if walk.fields_seen > _MAX_FIELDS:
                return f"more than {_MAX_FIELDS} protobuf fields"
            if f.wire_type == VARINT:
                external = external or (kind == "tensor" and f.number == 14 and f.value == 1)
                continue
            if f.wire_type != LENGTH:
                continue
            child = _CHILDREN.get(kind, {}).get(f.number)
            if child is not None:
                nested = child == "graph" and kind not in ("model", "training")
                queue.append((child, f.offset, f.offset + f.value, depth + nested))
            elif f.number in _STRINGS.get(kind, ()):
                strings[f.number] = read_text(stream, f, _MAX_NAME)
            elif kind == "tensor" and f.number == 13:
                entry = _entry(stream, f)
                if entry[0] == "location":
                    location = (entry[1], f.offset)
        if kind == "node":  # NodeProto: 4 op_type, 7 domain
            walk.nodes.setdefault(strings.get(7, ""), set()).add(strings.get(4, ""))
        elif kind == "function":  # FunctionProto: 1 name, 10 domain
            walk.functions.add((strings.get(10, ""), strings.get(1, "")))
        elif location is not None:
            walk.external.append(location)
        elif external:
            walk.external_missing.append(start)
    return None


# Which length-delimited fields hold sub-messages we descend into, and which hold the strings we
# read, by message kind (field numbers from onnx.proto3).
_CHILDREN: Final[dict[str, dict[int, str]]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 3: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse",
                  23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_STRINGS: Final[dict[str, tuple[int, ...]]] = {"node": (4, 7), "function": (1, 10)}


def _entry(stream: BinaryIO, entry: WireField) -> tuple[str, str]:
    """A StringStringEntryProto (1 key, 2 value)."""
    key = value = ""
    for f in fields(stream, entry.offset, entry.offset + entry.value):
        if f.wire_type == LENGTH and f.number == 1:
            key = read_text(stream, f, _MAX_NAME)
        elif f.wire_type == LENGTH and f.number == 2:
            value = read_text(stream, f, _MAX_NAME)
    return key, value


def _escapes(location: str) -> bool:
    """True when ``location`` is absolute or climbs out of the model's directory.

    Both separators count: ONNX Runtime on Windows reads ``..\\`` as a parent directory.
    """
    if "\x00" in location or location.startswith(("/", "\\", "~")) or \
            _WINDOWS_ABS.match(location):
        return True
    parts = PurePosixPath(location.replace("\\", "/")).parts
    height = 0
    for part in parts:
        height += -1 if part == ".." else (0 if part == "." else 1)
        if height < 0:
            return True
    return False


def _external_findings(source: Source, walk: _Walk) -> Iterator[Finding]:
    escaping = [(loc, at) for loc, at in walk.external if _escapes(loc)]
    for location, at in escaping:
        yield finding(
            source, "onnx.external-data.escape", Severity.HIGH,
            "ONNX external data points outside the model directory",
            detail=f"A tensor's bytes are read from {location!r}, which is absolute or climbs "
            "out of the model's directory: loading the model reads that file (for example a "
            "key or /etc/shadow) into a tensor whose value the model can then reveal.",
            remediation="Do not load this model; external data must be relative paths inside "
            "the model directory.",
            offset=at, evidence={"location": location}, techniques=CODE_EXECUTION,
        )
    inside = sorted({loc for loc, _ in walk.external if not _escapes(loc)})
    if inside:
        yield finding(
            source, "onnx.external-data", Severity.INFO, "ONNX model reads external data files",
            detail=f"Tensor data is stored in {len(inside)} file(s) beside the model; scan "
            "the model's whole directory so those files are checked too.",
            remediation="Scan the directory, not only the .onnx file.",
            evidence={"locations": inside[:50]},
        )
    if walk.external_missing:
        yield finding(
            source, "onnx.external-data.invalid", Severity.MEDIUM,
            "ONNX tensor is marked external but names no file",
            detail="A tensor's data_location is EXTERNAL with no 'location' entry; loaders "
            "reject or guess.",
            remediation="Re-export the model from its source framework.",
            offset=walk.external_missing[0],
            evidence={"tensors": len(walk.external_missing)},
        )


def _domain_findings(source: Source, walk: _Walk) -> Iterator[Finding]:
    for domain in sorted(walk.nodes):
        ops = sorted(op for op in walk.nodes[domain] if (domain, op) not in walk.functions)
        if domain in KNOWN_DOMAINS or not ops:
            continue
        yield finding(
            source, "onnx.domain.unknown", Severity.MEDIUM,
            f"ONNX model uses operators from the custom domain {domain!r}",
            detail=f"Operators {', '.join(ops[:20])} are not standard ONNX or ONNX Runtime ops "
            "and are not defined in the model: running it needs a native custom-op library, "
            "which is code that must be trusted separately.",
            remediation="Find out which library implements the domain and review its source "
            "before registering it with the runtime.",
            evidence={"domain": domain, "ops": ops[:100]}, techniques=SUPPLY_CHAIN,
        )
