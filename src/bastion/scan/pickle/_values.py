"""What the symbolic pickle machine works with: symbols in place of the objects a real
unpickler would build (imports, calls, persistent ids, containers), and what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Analysis", "Call", "DictValue", "Global", "ListValue", "Opaque", "Persistent", "Problem",
    "describe",
]


@dataclass(slots=True, eq=False)
class Global:
    """An imported object: what ``find_class(module, name)`` would return."""

    module: str
    name: str
    offset: int
    opcode: str
    proto: int
    """The protocol in force (names are remapped below 3, dotted paths walked from 4)."""
    known: bool = True
    """False when the operands were not strings (reported once as indeterminate)."""


@dataclass(slots=True, eq=False)
class Call:
    """The result of calling ``func``: REDUCE, NEWOBJ, NEWOBJ_EX, OBJ or INST."""

    func: object
    args: object
    offset: int
    opcode: str
    used: bool = False
    """Whether the result reached anything (a container, another call, the returned value)."""
    state: object = None
    """The last BUILD state applied to it."""


@dataclass(slots=True, eq=False)
class Opaque:
    """A value the analysis does not need in full (a large string, a persistent id, a buffer)."""

    kind: str
    size: int = 0
    offset: int | None = None
    """Stream offset of the payload's first byte, where it can be read again (``BINBYTES``,
    ``BINBYTES8``, ``BINSTRING``, ``BYTEARRAY8``); ``None`` for values with no raw payload."""


@dataclass(slots=True, eq=False)
class Persistent:
    """What the loader's ``persistent_load`` returns for ``pid`` (PyTorch: storages, classes)."""

    pid: object


@dataclass(slots=True, eq=False)
class DictValue:
    """A dict (first items kept)."""

    items: list[tuple[object, object]] = field(default_factory=list)

    def get(self, key: object) -> object:
        for k, v in self.items:
            if k == key and type(k) is type(key):
                return v
        return None


@dataclass(slots=True, eq=False)
class ListValue:
    """A list, set or frozenset (first items kept)."""

    items: list[object] = field(default_factory=list)
    kind: str = "list"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something structurally wrong or suspicious, found while interpreting."""

    rule: str
    offset: int
    message: str
    evidence: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Analysis:
    """What one pickle stream (from PROTO to STOP) would do."""

    start: int
    end: int = 0
    """Offset just past STOP (or where interpretation stopped)."""
    complete: bool = False
    """STOP was reached."""
    ops: int = 0
    globals: list[Global] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    builds: list[tuple[object, int]] = field(default_factory=list)
    """BUILD targets and their offsets."""
    problems: list[Problem] = field(default_factory=list)
    result: object = None
    """The value STOP returned."""


def describe(value: object) -> str:
    """A value in words, for findings."""
    if type(value) is Call:
        return f"the result of {value.opcode} at offset {value.offset}"
    if type(value) is Global:
        return f"{value.module}.{value.name}"
    if isinstance(value, Opaque):
        return value.kind
    if isinstance(value, Persistent):
        return "an object from the loader's persistent_load"
    return type(value).__name__
