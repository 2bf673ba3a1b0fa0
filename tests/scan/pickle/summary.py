"""Analyses in comparable form, for tests that run one input two ways."""

from __future__ import annotations

from bastion.scan.pickle._values import (
    Analysis,
    Call,
    DictValue,
    Global,
    ListValue,
    Opaque,
    Persistent,
)


def shape(v: object, depth: int = 0) -> object:
    """A symbolic value in comparable form (bounded: memo cycles make cyclic values)."""
    if depth > 8:
        return "..."
    if type(v) is tuple:
        return tuple(shape(x, depth + 1) for x in v)
    if type(v) is Call:
        return ("call", v.opcode, v.offset, v.used, shape(v.func, depth + 1))
    if type(v) is Global:
        return ("global", v.module, v.name)
    if isinstance(v, DictValue):
        return ("dict", [(shape(k, depth + 1), shape(x, depth + 1)) for k, x in v.items])
    if isinstance(v, ListValue):
        return (v.kind, [shape(x, depth + 1) for x in v.items])
    if isinstance(v, Persistent):
        return ("pid", shape(v.pid, depth + 1))
    if isinstance(v, Opaque):
        return ("opaque", v.kind, v.size, v.offset)
    return (type(v).__name__, repr(v))


def summary(a: object) -> tuple[object, ...]:
    """Everything the judge reads from an analysis, in comparable form."""
    assert isinstance(a, Analysis)
    return (
        a.complete, a.end, a.ops, shape(a.result),
        [(g.module, g.name, g.offset, g.opcode, g.proto, g.known) for g in a.globals],
        [(shape(c), shape(c.args)) for c in a.calls],
        [(p.rule, p.offset, p.message) for p in a.problems],
        [(shape(t), offset) for t, offset in a.builds],
    )
