"""PyTorch's tensor record, recognised whole and replayed in one step.

Almost all of a checkpoint's pickle is one record per tensor, 22 to 30 opcodes each::

    BINGET _rebuild_tensor_v2  MARK  MARK  BINGET 'storage'  BINGET <Storage class>
    BINUNICODE <key>  BINPUT  BINGET <location>  <numel>  [NONE]  TUPLE  BINPUT  BINPERSID
    <offset>  <size> [BINPUT]  <stride> [BINPUT]  NEWFALSE|NEWTRUE
    BINGET OrderedDict  EMPTY_TUPLE  REDUCE  BINPUT  TUPLE  BINPUT  REDUCE  BINPUT

``NONE`` is the legacy format's view metadata; memo indices past 255 take ``LONG_BINGET`` and
``LONG_BINPUT``; ints take ``BININT1``, ``BININT2`` or ``BININT``; a size or stride is
``EMPTY_TUPLE`` or ``TUPLE1``-``TUPLE3`` or ``MARK ... TUPLE`` of ints. Interpreting a record
opcode by opcode costs the machine's dispatch every time; :data:`RECORD` checks the same bytes
at C speed, and :func:`replay_record` makes exactly the stack, memo and call changes those
opcodes make, in their order.

The machine stays the authority. A record is replayed only when its replay is certainly exact:
its stores append to the memo in order (as a pickler numbers them), every index it gets is
already stored (so none is one of its own stores, and order cannot matter), and the memo limit
is out of reach. Anything else (another layout, a newer PyTorch's extra
arguments, a crafted near-miss) is interpreted opcode by opcode as before. A differential test
runs real checkpoints and mutated records both ways and requires the same analysis.
"""

from __future__ import annotations

import re
import struct
from typing import Final

from bastion.scan.pickle._values import Call, Persistent

__all__ = ["LONG_RECORD", "RECORD", "replay_record"]

_U32: Final = struct.Struct("<I").unpack_from
_I32: Final = struct.Struct("<i").unpack_from

_GET: Final = rb"(?:h(.)|j(.{4}))"
_PUT: Final = rb"(?:q(.)|r(.{4}))"
_INT: Final = rb"(?:K.|M.{2}|J.{4})"
_KEY: Final = rb"X(" + rb"|".join(
    bytes([n, 0, 0, 0]) + rb"[0-9]{%d}" % n for n in range(1, 21)
) + rb")"
"""A storage key: 1-20 decimal digits (so decoding it cannot fail)."""
_SEQUENCE: Final = (
    rb"(\)|" + _INT + rb"\x85|" + _INT * 2 + rb"\x86|" + _INT * 3 + rb"\x87|\(" + _INT
    + rb"{0,64}t)"
)
"""A size or stride: EMPTY_TUPLE or a tuple of ints."""
_TUPLE: Final = _SEQUENCE + _PUT + rb"?"
"""A size or stride and the BINPUT that stores it (PyTorch stores every tuple but the empty
one; either way is replayed as written)."""
RECORD: Final = re.compile(
    _GET + rb"\(\(" + _GET + _GET + _KEY + _PUT + _GET + rb"(" + _INT + rb")(N?)t" + _PUT
    + rb"Q(" + _INT + rb")" + _TUPLE + _TUPLE + rb"([\x88\x89])" + _GET + rb"\)()R" + _PUT
    + rb"t" + _PUT + rb"()R" + _PUT,
    re.DOTALL,
)
"""One tensor record, from the BINGET of the rebuild function to the BINPUT of its result."""
_HOOKS_REDUCE: Final = 26
_RESULT_REDUCE: Final = 31
"""The (empty) groups just before the two REDUCEs: where the calls are."""

_LONG_PUT: Final = rb"(?:r(.{4}))?"
LONG_RECORD: Final = re.compile(
    rb"(h.\(\(h.h.)" + _KEY + rb"(r.{4}h.)(" + _INT + rb")(N?)tr(.{4})Q(" + _INT + rb")"
    + _SEQUENCE + _LONG_PUT + _SEQUENCE + _LONG_PUT + rb"([\x88\x89]h.\)Rr.{4}tr.{4}Rr.{4})",
    re.DOTALL,
)
"""The same record as a large checkpoint writes almost all of them: past the first 256 memo
entries every store is a ``LONG_BINPUT``, while what the record gets (stored by the first
tensors) still takes a one-byte ``BINGET``. Its fixed stretches are decoded with one
``struct`` call each instead of one index at a time."""
_HEAD: Final = struct.Struct("<xBxxxBxB").unpack
"""BINGET rebuild, MARK, MARK, BINGET 'storage', BINGET <Storage class>."""
_MIDDLE: Final = struct.Struct("<xIxB").unpack
"""LONG_BINPUT key, BINGET location."""
_TAIL: Final = struct.Struct("<BxBxxxIxxIxxI").unpack
"""NEWTRUE|NEWFALSE, BINGET hooks, EMPTY_TUPLE, REDUCE, LONG_BINPUT, TUPLE, LONG_BINPUT,
REDUCE, LONG_BINPUT."""
_TAIL_GROUP: Final = 12
_FIXED_OPS: Final = 22
"""Opcodes in every record (the NONE, sizes, strides and their BINPUTs come on top)."""


def _int(op: bytes) -> int:
    code = op[0]
    if code == 0x4B:
        return op[1]
    if code == 0x4D:
        return op[1] | op[2] << 8
    return int(_I32(op, 1)[0])


_TUPLES: dict[bytes, tuple[tuple[int, ...], int]] = {}
"""Short sizes and strides already decoded (a model repeats a few shapes): the bytes, then
the tuple and its opcode count."""


def _ints(span: bytes) -> tuple[tuple[int, ...], int]:
    """A matched size or stride: the tuple and its opcode count."""
    if span == b")":
        return (), 1
    values: list[int] = []
    marked = span[0] == 0x28
    j, end = (1 if marked else 0), len(span) - 1
    while j < end:
        code = span[j]
        if code == 0x4B:
            values.append(span[j + 1])
            j += 2
        elif code == 0x4D:
            values.append(span[j + 1] | span[j + 2] << 8)
            j += 3
        else:
            values.append(int(_I32(span, j + 1)[0]))
            j += 5
    result = (tuple(values), len(values) + (2 if marked else 1))
    if len(span) <= 32:
        if len(_TUPLES) >= 4096:
            _TUPLES.clear()
        _TUPLES[span] = result
    return result


def replay_record(
    m: re.Match[bytes], base: int, stack: list[object], memo: list[object],
    calls: list[Call], room: int,
) -> int:
    """Apply the record ``m`` (of :data:`RECORD` or :data:`LONG_RECORD`) matched at
    ``base + m.start()`` to the machine's ``stack``, ``memo`` and ``calls``; return its opcode
    count, or 0 (nothing changed) when it must be interpreted opcode by opcode. ``room``: the
    length the memo may grow to by appending."""
    u32 = _U32  # each index is one byte (BINGET/BINPUT) or four (the LONG_ forms)
    if m.re is LONG_RECORD:
        head, key, middle, numel, none, p4, offset, size, z4, stride, t4, tail = m.groups()
        rebuild_at, storage_at, class_at = _HEAD(head)
        key_at, location_at = _MIDDLE(middle)
        grad, hooks_at, hooks_call_at, args_at, result_at = _TAIL(tail)
        pid_at = u32(p4)[0]
        size_at = u32(z4)[0] if z4 else None
        stride_at = u32(t4)[0] if t4 else None
        hooks_reduce = base + m.start(_TAIL_GROUP) + 4
        result_reduce = hooks_reduce + 12
    else:
        (r1, r4, s1, s4, c1, c4, key, k1, k4, l1, l4, numel, none, p1, p4, offset,
         size, z1, z4, stride, t1, t4, g, h1, h4, _, hp1, hp4, a1, a4, _, x1, x4) = m.groups()
        rebuild_at = r1[0] if r1 else u32(r4)[0]
        storage_at = s1[0] if s1 else u32(s4)[0]
        class_at = c1[0] if c1 else u32(c4)[0]
        location_at = l1[0] if l1 else u32(l4)[0]
        hooks_at = h1[0] if h1 else u32(h4)[0]
        key_at = k1[0] if k1 else u32(k4)[0]
        pid_at = p1[0] if p1 else u32(p4)[0]
        hooks_call_at = hp1[0] if hp1 else u32(hp4)[0]
        args_at = a1[0] if a1 else u32(a4)[0]
        result_at = x1[0] if x1 else u32(x4)[0]
        size_at = z1[0] if z1 else u32(z4)[0] if z4 else None
        stride_at = t1[0] if t1 else u32(t4)[0] if t4 else None
        grad = g[0]
        hooks_reduce = base + m.start(_HOOKS_REDUCE)
        result_reduce = base + m.start(_RESULT_REDUCE)
    # Exact when every store appends, in order, as a pickler numbers them, and every read is
    # of an entry already there: then no read can see one of the record's own stores, and
    # reading first and storing after is what the opcodes do. (Any other numbering, a read of
    # a missing or own entry, or the memo limit in reach: opcode by opcode.)
    at = len(memo)
    if key_at != at or pid_at != at + 1:
        return 0
    at += 2
    if size_at is not None:
        if size_at != at:
            return 0
        at += 1
    if stride_at is not None:
        if stride_at != at:
            return 0
        at += 1
    if hooks_call_at != at or args_at != at + 1 or result_at != at + 2 or at + 3 > room:
        return 0
    try:
        rebuild, storage, cls = memo[rebuild_at], memo[storage_at], memo[class_at]
        location, hooks = memo[location_at], memo[hooks_at]
    except IndexError:
        return 0

    name = key[4:].decode("ascii")  # BINUNICODE, BINPUT
    code = numel[0]  # BININT1, BININT (large tensors) or BININT2
    count = numel[1] if code == 0x4B else _I32(numel, 1)[0] if code == 0x4A else \
        numel[1] | numel[2] << 8
    pid = (storage, cls, name, location, count, None) if none else \
        (storage, cls, name, location, count)  # TUPLE (marks calls in it used), BINPUT
    if type(storage) is Call:
        storage.used = True
    if type(cls) is Call:
        cls.used = True
    if type(location) is Call:
        location.used = True
    store = memo.append
    store(name)
    store(pid)
    size_value, size_ops = _TUPLES.get(size) or _ints(size)
    if size_at is not None:
        store(size_value)
    stride_value, stride_ops = _TUPLES.get(stride) or _ints(stride)
    if stride_at is not None:
        store(stride_value)
    if type(hooks) is Call:  # REDUCE uses its callable
        hooks.used = True
    hooks_call = Call(hooks, (), hooks_reduce, "REDUCE", True)  # used: TUPLE
    args = (Persistent(pid), offset[1] if offset[0] == 0x4B else _int(offset), size_value,
            stride_value, grad == 0x88, hooks_call)
    if type(rebuild) is Call:
        rebuild.used = True
    result = Call(rebuild, args, result_reduce, "REDUCE")
    calls += hooks_call, result
    memo += hooks_call, args, result
    stack.append(result)
    return _FIXED_OPS + len(none) + size_ops + stride_ops + (size_at is not None) + \
        (stride_at is not None)
