"""A symbolic pickle machine: interprets every opcode the way CPython's C unpickler would, with
symbols in place of objects, so the exact callable each import or call would reach is known.

Nothing is imported or called. Strings stay strings (so names assembled on the stack or fetched
from the memo are resolved exactly); imports become :class:`Global`; calls become :class:`Call`;
everything else is kept only as far as the analysis needs it. Large raw payloads (``BINBYTES8``,
``BINUNICODE8``, ``BYTEARRAY8`` …) are skipped by seeking, so cost follows opcodes, not bytes.

Design choices that close whole classes of scanner bypass (picklescan/modelscan/fickling
advisories):

1. Opcodes are read the way the C unpickler reads them (``FRAME`` only prefetches; ``PROTO`` may
   appear anywhere and changes name resolution), not via ``pickletools.genops``.
2. Names are resolved from the *stack values* (``STACK_GLOBAL`` operands may come from the memo,
   ``BINGET``/``LONG_BINGET``/``GET`` alike); a non-string operand is reported, never guessed.
3. The machine never stops at the first problem: a break in the stream is reported *with*
   everything that ran before it, and the first ``STOP`` is not the end of the file.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Callable
from typing import BinaryIO, Final

from bastion.scan.pickle._state import SINK_KEYS, check_state
from bastion.scan.pickle._tensor_record import LONG_RECORD, RECORD, replay_record
from bastion.scan.pickle._values import (
    Analysis,
    Call,
    DictValue,
    Global,
    ListValue,
    Opaque,
    Persistent,
    Problem,
    describe,
)

__all__ = [
    "Analysis",
    "Call",
    "DictValue",
    "Global",
    "Opaque",
    "Persistent",
    "Problem",
    "Reader",
    "analyse",
    "describe",
]

_KEEP_STR: Final = 1 << 16
"""Strings and bytes up to this length are kept as values; longer ones are skipped."""
_KEEP_ITEMS: Final = 64
"""Container items kept per container (enough for the analysis; bounds memory)."""
_MAX_LINE: Final = 1 << 20
"""Longest text-protocol line read into memory."""
_BUFFER: Final = 1 << 16
_FIRST_READ: Final = 1 << 12
"""The first refill; each next one doubles, up to ``_BUFFER`` (a legacy checkpoint's first
three pickles are a few bytes each, in front of gigabytes)."""
_U32: Final = struct.Struct("<I").unpack_from
_I32: Final = struct.Struct("<i").unpack_from


class TruncatedError(Exception):
    """The stream ended inside an opcode."""


def _malformed(message: str) -> BrokenStreamError:
    return BrokenStreamError("pickle.stream.malformed", message)


class BrokenStreamError(Exception):
    """The stream is not a pickle the unpickler would accept past this point."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


class Reader:
    """Reads a window ``[start, end)`` of a seekable stream through a small buffer.

    Large payloads are skipped by moving the window (no read); the stream is re-positioned
    before every refill, so others may use it in between (joblib's nested pickles).
    """

    def __init__(self, stream: BinaryIO, start: int, end: int) -> None:
        self.stream, self.end = stream, end
        self.base = start
        """Stream offset of ``buf[0]``."""
        self.buf = b""
        self.i = 0
        self.chunk = min(_FIRST_READ, _BUFFER)

    @property
    def pos(self) -> int:
        """The stream offset of the next byte to read."""
        return self.base + self.i

    def _fill(self, n: int) -> None:
        """Make at least ``n`` bytes available from ``i`` (a refill of at least ``chunk``)."""
        pos = self.base + self.i
        if n > self.end - pos:
            raise TruncatedError
        rest = self.buf[self.i:]
        want = min(max(n, self.chunk) - len(rest), self.end - pos - len(rest))
        self.chunk = min(2 * self.chunk, _BUFFER)
        self.stream.seek(pos + len(rest))
        self.buf = rest + self.stream.read(want)
        self.base, self.i = pos, 0
        if len(self.buf) < n:
            raise TruncatedError

    def byte(self) -> int:
        i = self.i
        if i >= len(self.buf):
            self._fill(1)
            i = 0
        self.i = i + 1
        return self.buf[i]

    def read(self, n: int) -> bytes:
        i = self.i
        if i + n > len(self.buf):
            self._fill(n)
            i = 0
        self.i = i + n
        return self.buf[i:i + n]

    def skip(self, n: int) -> None:
        if n > self.end - self.pos:
            raise TruncatedError
        if self.i + n <= len(self.buf):
            self.i += n
        else:
            self.base, self.buf, self.i = self.base + self.i + n, b"", 0

    def readline(self) -> bytes | None:
        """One ``\\n``-terminated line without the newline; ``None`` when too long (skipped)."""
        while True:
            j = self.buf.find(b"\n", self.i)
            if j >= 0:
                line = self.buf[self.i:j]
                self.i = j + 1
                return line if len(line) <= _MAX_LINE else None
            available = len(self.buf) - self.i
            if available > _MAX_LINE:  # too long to keep: drop what we have, look further
                self.base, self.buf, self.i = self.base + len(self.buf), b"", 0
                available = 0
            self._fill(available + 1)


BuildHook = Callable[[Call, object, Reader], None]
"""Called after BUILD on a call result; may consume bytes (joblib writes arrays inline)."""


def _use(value: object) -> None:
    if type(value) is Call:
        value.used = True


def _keep(items: list[object]) -> list[object]:
    for v in items:  # _use, inlined: a state dict's SETITEMS holds a thousand values
        if type(v) is Call:
            v.used = True
    return items[:_KEEP_ITEMS]


def _decode_line(line: bytes | None, what: str) -> str:
    if line is None:
        raise _malformed(f"{what} line is too long")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(f"{what} is not valid UTF-8") from None


class _Machine:
    def __init__(
        self, reader: Reader, analysis: Analysis, max_ops: int, max_memo: int,
        deadline: float, on_build: BuildHook | None,
    ) -> None:
        self.r = reader
        self.a = analysis
        self.stack: list[object] = []
        self.metastack: list[list[object]] = []
        self.memo: list[object] = []
        """Memo entries ``0 .. len - 1``: a pickler numbers its stores in order, so the memo is
        a list while they are (no dict to grow, rehash and fault in on every scan)."""
        self.far: dict[int, object] = {}
        """Entries stored past the end of :attr:`memo` (a crafted or unusual pickle); every key
        is greater than ``len(memo)``, and they move into :attr:`memo` once it reaches them.
        Entries: ``len(memo) + len(far)``, as the C unpickler counts them."""
        self.proto = 0
        self.max_ops, self.max_memo, self.deadline = max_ops, max_memo, deadline
        self.on_build = on_build
        self.offset = 0

    # -- stack helpers -------------------------------------------------------------------
    def pop(self) -> object:
        if not self.stack:
            raise _malformed("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[object]:
        if not self.metastack:
            raise _malformed("no MARK to pop to")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def top(self) -> object:
        if not self.stack:
            raise _malformed("stack underflow")
        return self.stack[-1]

    def memo_put(self, index: int) -> None:
        if index < 0:
            raise _malformed("negative memo index")
        memo, far = self.memo, self.far
        if index >= len(memo) and index not in far and len(memo) + len(far) >= self.max_memo:
            raise BrokenStreamError("pickle.limit.memo", f"more than {self.max_memo} memo entries")
        value = self.top()
        if index < len(memo):
            memo[index] = value
        elif index > len(memo):
            far[index] = value
        else:
            memo.append(value)
            while far and len(memo) in far:
                memo.append(far.pop(len(memo)))

    def memo_get(self, index: int) -> None:
        if 0 <= index < len(self.memo):
            self.stack.append(self.memo[index])
        elif index in self.far:
            self.stack.append(self.far[index])
        else:
            raise _malformed(f"memo entry {index} was never stored")

    def text(self, data: bytes) -> object:
        if len(data) > _KEEP_STR:
            return Opaque("str", len(data))
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise _malformed("string is not valid UTF-8") from None

    def blob(self, n: int, kind: str) -> object:
        if n > _KEEP_STR:
            offset = self.r.pos
            self.r.skip(n)
            return Opaque(kind, n, offset)
        return self.r.read(n)

    def length(self, size: int, fmt: str) -> int:
        (n,) = struct.unpack(fmt, self.r.read(size))
        if n < 0:
            raise _malformed("negative length")
        if n > self.r.end - self.r.pos:
            raise BrokenStreamError(
                "pickle.stream.truncated", f"declared length {n} runs past the end of the stream"
            )
        return int(n)

    def call(self, func: object, args: object, opcode: str) -> Call:
        _use(func)
        _use(args)
        c = Call(func, args, self.offset, opcode)
        self.a.calls.append(c)
        self.stack.append(c)
        return c

    def import_(self, module: object, name: object, opcode: str) -> Global:
        if type(module) is not str or type(name) is not str:
            self.a.problems.append(Problem(
                "pickle.global.indeterminate", self.offset,
                f"{opcode} operands are not plain strings; the imported object cannot be known",
                {"module": describe(module), "name": describe(name)},
            ))
            g = Global(describe(module), describe(name), self.offset, opcode, self.proto, False)
            self.a.globals.append(g)
            return g
        g = Global(module, name, self.offset, opcode, self.proto)
        self.a.globals.append(g)
        return g

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Interpret until STOP.

        The opcodes that make up almost all of a real checkpoint are interpreted inline on
        local variables when their operands are already in the buffer and they are valid;
        everything else (rare opcodes, buffer refills, every error) takes the handler in
        :data:`_DISPATCH`, so each rule and error message lives in exactly one place. A
        ``BINGET`` that opens a PyTorch tensor record may replay the whole record in one step
        (:mod:`._tensor_record`); the record's opcodes count towards the limits all the same.
        """
        r, a = self.r, self.a
        dispatch, memo, calls, metastack = _DISPATCH, self.memo, a.calls, self.metastack
        max_memo, max_ops = self.max_memo, self.max_ops
        memo_room = max_memo  # the fast path appends to the memo below this length (0: never)
        u32, i32 = _U32, _I32
        stack = self.stack
        buf, i, base = r.buf, r.i, r.base
        n = len(buf)
        fast_until = n - 9  # the fast path needs the opcode and up to 8 operand bytes at hand
        ops = a.ops
        extra = 0  # opcodes beyond one per iteration (tensor records replayed whole)
        record, long_record, replay = RECORD.match, LONG_RECORD.match, replay_record
        try:
            for ops in itertools.count(a.ops + 1):
                if i <= fast_until:  # by frequency in torch (records aside) and numpy pickles
                    code = buf[i]
                    if code == 0x72:  # LONG_BINPUT
                        index = u32(buf, i + 1)[0]
                        if stack:
                            if index == len(memo) < memo_room:
                                memo.append(stack[-1])
                                i += 5
                                continue
                            if index < len(memo):
                                memo[index] = stack[-1]
                                i += 5
                                continue
                    elif code == 0x68:  # BINGET
                        if buf[i + 2] == 0x28 and (
                            m := long_record(buf, i) or record(buf, i)
                        ) is not None and (k := replay(m, base, stack, memo, calls, memo_room)):
                            extra += k - 1
                            i = m.end()
                            continue
                        index = buf[i + 1]
                        if index < len(memo):
                            stack.append(memo[index])
                            i += 2
                            continue
                    elif code == 0x58:  # BINUNICODE, and the BINPUT that stores it, if next
                        end = i + 5 + u32(buf, i + 1)[0]
                        if end <= n:
                            try:
                                value = buf[i + 5:end].decode("utf-8", "surrogatepass")
                            except UnicodeDecodeError:
                                pass  # the handler reports it
                            else:
                                stack.append(value)
                                i = end
                                if end <= fast_until and len(memo) < memo_room:
                                    code = buf[end]
                                    if code == 0x72 and u32(buf, end + 1)[0] == len(memo):
                                        memo.append(value)  # LONG_BINPUT
                                        i += 5
                                        extra += 1
                                    elif code == 0x71 and buf[end + 1] == len(memo):
                                        memo.append(value)  # BINPUT
                                        i += 2
                                        extra += 1
                                continue
                    elif code == 0x6A:  # LONG_BINGET
                        if buf[i + 5] == 0x28 and (m := record(buf, i)) is not None and (
                            k := replay(m, base, stack, memo, calls, memo_room)
                        ):
                            extra += k - 1
                            i = m.end()
                            continue
                        index = u32(buf, i + 1)[0]
                        if index < len(memo):
                            stack.append(memo[index])
                            i += 5
                            continue
                    elif code == 0x4B:  # BININT1
                        stack.append(buf[i + 1])
                        i += 2
                        continue
                    elif code == 0x28:  # MARK
                        metastack.append(stack)
                        stack = []
                        i += 1
                        continue
                    elif code == 0x71:  # BINPUT
                        index = buf[i + 1]
                        if stack:
                            if index == len(memo) < memo_room:
                                memo.append(stack[-1])
                                i += 2
                                continue
                            if index < len(memo):
                                memo[index] = stack[-1]
                                i += 2
                                continue
                    elif code == 0x94:  # MEMOIZE: at the number of entries, len(memo) if dense
                        if stack and len(memo) < memo_room:
                            memo.append(stack[-1])
                            i += 1
                            continue
                    elif code == 0x8C:  # SHORT_BINUNICODE
                        end = i + 2 + buf[i + 1]
                        if end <= n:
                            try:
                                stack.append(buf[i + 2:end].decode("utf-8", "surrogatepass"))
                            except UnicodeDecodeError:
                                pass  # the handler reports it
                            else:
                                i = end
                                continue
                    elif code == 0x75:  # SETITEMS into a dict (a state dict's thousand items)
                        below = metastack[-1] if metastack else None
                        if below and type(below[-1]) is DictValue and not len(stack) % 2:
                            target = below[-1].items
                            for v in stack:
                                if type(v) is Call:
                                    v.used = True
                            room = _KEEP_ITEMS - len(target)
                            if room > 0:  # keys and values, in pairs
                                pairs = iter(stack[:2 * room])
                                target.extend(zip(pairs, pairs, strict=True))
                            stack = metastack.pop()
                            i += 1
                            continue
                    elif code == 0x7D:  # EMPTY_DICT
                        stack.append(DictValue())
                        i += 1
                        continue
                    elif code == 0x52:  # REDUCE
                        if len(stack) >= 2:
                            args = stack.pop()
                            func = stack.pop()
                            if type(func) is Call:
                                func.used = True
                            if type(args) is Call:
                                args.used = True
                            c = Call(func, args, base + i, "REDUCE")
                            calls.append(c)
                            stack.append(c)
                            i += 1
                            continue
                    elif code == 0x74:  # TUPLE
                        if metastack:
                            items = stack
                            stack = metastack.pop()
                            for v in items:
                                if type(v) is Call:
                                    v.used = True
                            stack.append(tuple(items[:_KEEP_ITEMS]))
                            i += 1
                            continue
                    elif code == 0x29:  # EMPTY_TUPLE
                        stack.append(())
                        i += 1
                        continue
                    elif code == 0x85:  # TUPLE1
                        if stack:
                            v = stack[-1]
                            if type(v) is Call:
                                v.used = True
                            stack[-1] = (v,)
                            i += 1
                            continue
                    elif code == 0x86:  # TUPLE2
                        if len(stack) >= 2:
                            v, w = stack[-2], stack[-1]
                            if type(v) is Call:
                                v.used = True
                            if type(w) is Call:
                                w.used = True
                            stack[-2:] = [(v, w)]
                            i += 1
                            continue
                    elif code == 0x89:  # NEWFALSE
                        stack.append(False)
                        i += 1
                        continue
                    elif code == 0x88:  # NEWTRUE
                        stack.append(True)
                        i += 1
                        continue
                    elif code == 0x4E:  # NONE
                        stack.append(None)
                        i += 1
                        continue
                    elif code == 0x51:  # BINPERSID
                        if stack:
                            pid = stack[-1]
                            if type(pid) is Call:
                                pid.used = True
                            stack[-1] = Persistent(pid)
                            i += 1
                            continue
                    elif code == 0x4D:  # BININT2
                        stack.append(buf[i + 1] | buf[i + 2] << 8)
                        i += 3
                        continue
                    elif code == 0x4A:  # BININT
                        stack.append(i32(buf, i + 1)[0])
                        i += 5
                        continue
                    elif code == 0x87:  # TUPLE3
                        if len(stack) >= 3:
                            items = stack[-3:]
                            for v in items:
                                if type(v) is Call:
                                    v.used = True
                            stack[-3:] = [tuple(items)]
                            i += 1
                            continue
                    elif code == 0x93:  # STACK_GLOBAL
                        if len(stack) >= 2 and type(stack[-1]) is str and type(stack[-2]) is str:
                            g = Global(stack[-2], stack[-1], base + i, "STACK_GLOBAL", self.proto)
                            a.globals.append(g)
                            stack[-2:] = [g]
                            i += 1
                            continue
                    elif code == 0x43:  # SHORT_BINBYTES
                        end = i + 2 + buf[i + 1]
                        if end <= n:
                            stack.append(buf[i + 2:end])
                            i = end
                            continue
                    elif code == 0x42:  # BINBYTES
                        end = i + 5 + u32(buf, i + 1)[0]
                        if end <= n and end - i - 5 <= _KEEP_STR:
                            stack.append(buf[i + 5:end])
                            i = end
                            continue
                    elif code == 0x5D:  # EMPTY_LIST
                        stack.append(ListValue())
                        i += 1
                        continue
                # The slow path: hand the state to the machine, run the handler, take it back.
                # Every fast opcode consumes a byte of a bounded buffer, so the limits are
                # checked here at least once per buffer's worth of opcodes.
                self.stack, r.i, self.offset = stack, i, base + i
                if ops + extra > max_ops:
                    raise BrokenStreamError("pickle.limit.ops", f"more than {max_ops} opcodes")
                if time.monotonic() > self.deadline:
                    raise BrokenStreamError("pickle.limit.time", "the time limit was reached")
                code = r.byte()
                handler = dispatch[code]
                if handler is None:
                    raise BrokenStreamError(
                        "pickle.stream.invalid-opcode", f"invalid opcode {code:#04x}"
                    )
                if handler(self):
                    a.complete = True
                    return
                stack, buf, i, base = self.stack, r.buf, r.i, r.base
                n = len(buf)
                fast_until = n - 9
                memo_room = 0 if self.far else max_memo  # appending must not pass a far entry
        finally:
            a.ops = ops + extra

    # -- opcodes -------------------------------------------------------------------------
    def op_proto(self) -> None:
        p = r_byte(self.r)
        if p > 5:
            raise _malformed(f"unsupported protocol {p}")
        self.proto = p

    def op_frame(self) -> None:
        self.length(8, "<Q")  # C unpickler: a prefetch only; must fit in the stream

    def op_stop(self) -> bool:
        value = self.pop()
        _use(value)
        self.a.result = value
        self.a.end = self.r.pos
        return True

    def op_mark(self) -> None:
        self.metastack.append(self.stack)
        self.stack = []

    def op_pop(self) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def op_pop_mark(self) -> None:
        self.pop_mark()

    def op_dup(self) -> None:
        self.stack.append(self.top())

    def push(self, value: object) -> None:
        self.stack.append(value)

    # constants
    def op_none(self) -> None:
        self.push(None)

    def op_true(self) -> None:
        self.push(True)

    def op_false(self) -> None:
        self.push(False)

    def op_int(self) -> None:
        line = _decode_line(self.r.readline(), "INT")
        if line in ("00", "01"):
            self.push(line == "01")
            return
        try:
            self.push(int(line, 0 if line.startswith(("0x", "0X")) else 10))
        except ValueError:
            raise _malformed("INT is not a number") from None

    def op_long(self) -> None:
        line = _decode_line(self.r.readline(), "LONG").rstrip("L")
        try:
            self.push(int(line) if len(line) < 4000 else Opaque("int"))
        except ValueError:
            raise _malformed("LONG is not a number") from None

    def op_float(self) -> None:
        line = _decode_line(self.r.readline(), "FLOAT")
        try:
            self.push(float(line))
        except ValueError:
            raise _malformed("FLOAT is not a number") from None

    def op_binint(self) -> None:
        self.push(struct.unpack("<i", self.r.read(4))[0])

    def op_binint1(self) -> None:
        self.push(r_byte(self.r))

    def op_binint2(self) -> None:
        self.push(struct.unpack("<H", self.r.read(2))[0])

    def op_binfloat(self) -> None:
        self.push(struct.unpack(">d", self.r.read(8))[0])

    def op_long1(self) -> None:
        n = r_byte(self.r)
        self.push(int.from_bytes(self.r.read(n), "little", signed=True))

    def op_long4(self) -> None:
        n = self.length(4, "<i")
        if n > 4096:
            self.r.skip(n)
            self.push(Opaque("int", n))
        else:
            self.push(int.from_bytes(self.r.read(n), "little", signed=True))

    # strings and bytes
    def op_string(self) -> None:
        line = self.r.readline()
        if line is None:
            self.push(Opaque("str"))
            return
        if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
            raise _malformed("STRING is not quoted")
        try:
            self.push(line[1:-1].decode("unicode_escape").encode("latin-1").decode("latin-1"))
        except (UnicodeDecodeError, UnicodeEncodeError):
            raise _malformed("STRING has a bad escape") from None

    def op_binstring(self) -> None:
        n = self.length(4, "<i")
        data = self.blob(n, "str")
        self.push(data.decode("latin-1") if isinstance(data, bytes) else data)

    def op_short_binstring(self) -> None:
        self.push(self.r.read(r_byte(self.r)).decode("latin-1"))

    def op_unicode(self) -> None:
        line = self.r.readline()
        if line is None:
            self.push(Opaque("str"))
            return
        try:
            self.push(line.decode("raw-unicode-escape"))
        except UnicodeDecodeError:
            raise _malformed("UNICODE has a bad escape") from None

    def op_short_binunicode(self) -> None:
        self.push(self.text(self.r.read(r_byte(self.r))))

    def op_binunicode(self) -> None:
        self._unicode(self.length(4, "<I"))

    def op_binunicode8(self) -> None:
        self._unicode(self.length(8, "<Q"))

    def _unicode(self, n: int) -> None:
        if n > _KEEP_STR:
            self.r.skip(n)
            self.push(Opaque("str", n))
        else:
            self.push(self.text(self.r.read(n)))

    def op_short_binbytes(self) -> None:
        self.push(self.r.read(r_byte(self.r)))

    def op_binbytes(self) -> None:
        self.push(self.blob(self.length(4, "<I"), "bytes"))

    def op_binbytes8(self) -> None:
        self.push(self.blob(self.length(8, "<Q"), "bytes"))

    def op_bytearray8(self) -> None:
        self.push(self.blob(self.length(8, "<Q"), "bytearray"))

    def op_next_buffer(self) -> None:
        self.push(Opaque("buffer"))

    def op_readonly_buffer(self) -> None:
        self.top()

    # containers
    def op_empty_tuple(self) -> None:
        self.push(())

    def op_tuple(self) -> None:
        self.push(tuple(_keep(self.pop_mark())))

    def op_tuple1(self) -> None:
        self.push(tuple(_keep([self.pop()])))

    def op_tuple2(self) -> None:
        b, a_ = self.pop(), self.pop()
        self.push(tuple(_keep([a_, b])))

    def op_tuple3(self) -> None:
        c, b, a_ = self.pop(), self.pop(), self.pop()
        self.push(tuple(_keep([a_, b, c])))

    def op_empty_list(self) -> None:
        self.push(ListValue())

    def op_list(self) -> None:
        self.push(ListValue(_keep(self.pop_mark())))

    def op_empty_dict(self) -> None:
        self.push(DictValue())

    def op_dict(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            raise _malformed("DICT with an odd number of items")
        _keep(items)
        pairs = list(zip(items[::2], items[1::2], strict=True))
        self.push(DictValue(pairs[:_KEEP_ITEMS] + [
            (k, v) for k, v in pairs[_KEEP_ITEMS:] if type(k) is str and k in SINK_KEYS]))

    def op_empty_set(self) -> None:
        self.push(ListValue(kind="set"))

    def op_frozenset(self) -> None:
        self.push(ListValue(_keep(self.pop_mark()), "frozenset"))

    def _append_to(self, target: object, items: list[object]) -> None:
        _keep(items)
        if isinstance(target, ListValue):
            room = _KEEP_ITEMS - len(target.items)
            if room > 0:
                target.items.extend(items[:room])
        elif type(target) is Global:
            # APPEND on an imported object calls its own append/extend: a call, not data
            self.a.problems.append(Problem(
                "pickle.call.method-on-global", self.offset,
                "APPEND/APPENDS on an imported object calls its append or extend method",
            ))
        elif type(target) is not Call and not isinstance(target, Opaque):
            raise _malformed("APPEND to something that is not a list")

    def op_append(self) -> None:
        value = self.pop()
        self._append_to(self.top(), [value])

    def op_appends(self) -> None:
        items = self.pop_mark()
        self._append_to(self.top(), items)

    def op_additems(self) -> None:
        items = self.pop_mark()
        self._append_to(self.top(), items)

    def _setitems(self, items: list[object]) -> None:
        if len(items) % 2:
            raise _malformed("SETITEMS with an odd number of items")
        _keep(items)
        target = self.top()
        if isinstance(target, DictValue):
            room = max(_KEEP_ITEMS - len(target.items), 0)
            if room:
                kept = items[:2 * room]
                target.items.extend(zip(kept[::2], kept[1::2], strict=True))
            if len(items) > 2 * room:  # a key some class executes is kept however many come
                rest = items[2 * room:]
                target.items.extend((k, v) for k, v in zip(rest[::2], rest[1::2], strict=True)
                                    if type(k) is str and k in SINK_KEYS)
        elif type(target) is Global:
            self.a.problems.append(Problem(
                "pickle.call.method-on-global", self.offset,
                "SETITEM(S) on an imported object calls its __setitem__ method",
            ))
        elif type(target) is not Call and not isinstance(target, Opaque):
            raise _malformed("SETITEM on something that is not a dict")

    def op_setitem(self) -> None:
        v, k = self.pop(), self.pop()
        self._setitems([k, v])

    def op_setitems(self) -> None:
        self._setitems(self.pop_mark())

    # memo
    def op_put(self) -> None:
        line = _decode_line(self.r.readline(), "PUT")
        try:
            self.memo_put(int(line))
        except ValueError:
            raise _malformed("PUT index is not a number") from None

    def op_binput(self) -> None:
        self.memo_put(r_byte(self.r))

    def op_long_binput(self) -> None:
        self.memo_put(struct.unpack("<I", self.r.read(4))[0])

    def op_memoize(self) -> None:
        """Stores at the number of entries, as the C unpickler does (not at the next index)."""
        n = len(self.memo) + len(self.far)
        if n >= self.max_memo:
            raise BrokenStreamError("pickle.limit.memo", f"more than {self.max_memo} memo entries")
        self.memo_put(n)

    def op_get(self) -> None:
        line = _decode_line(self.r.readline(), "GET")
        try:
            self.memo_get(int(line))
        except ValueError:
            raise _malformed("GET index is not a number") from None

    def op_binget(self) -> None:
        self.memo_get(r_byte(self.r))

    def op_long_binget(self) -> None:
        self.memo_get(struct.unpack("<I", self.r.read(4))[0])

    # imports
    def op_global(self) -> None:
        module = _decode_line(self.r.readline(), "GLOBAL module")
        name = _decode_line(self.r.readline(), "GLOBAL name")
        self.push(self.import_(module, name, "GLOBAL"))

    def op_stack_global(self) -> None:
        name, module = self.pop(), self.pop()
        self.push(self.import_(module, name, "STACK_GLOBAL"))

    def op_ext(self, size: int, fmt: str) -> None:
        (code,) = struct.unpack(fmt, self.r.read(size))
        self.a.problems.append(Problem(
            "pickle.global.extension", self.offset,
            f"EXT{size} imports whatever the loading process registered as extension {code}",
            {"code": code},
        ))
        self.push(self.import_(f"<extension {code}>", "?", f"EXT{size}"))

    def op_ext1(self) -> None:
        self.op_ext(1, "<B")

    def op_ext2(self) -> None:
        self.op_ext(2, "<H")

    def op_ext4(self) -> None:
        self.op_ext(4, "<i")

    # calls
    def op_reduce(self) -> None:
        args, func = self.pop(), self.pop()
        self.call(func, args, "REDUCE")

    def op_newobj(self) -> None:
        args, cls = self.pop(), self.pop()
        self.call(cls, args, "NEWOBJ")

    def op_newobj_ex(self) -> None:
        kwargs, args, cls = self.pop(), self.pop(), self.pop()
        _use(kwargs)
        self.call(cls, (args, kwargs), "NEWOBJ_EX")

    def op_obj(self) -> None:
        items = self.pop_mark()
        if not items:
            raise _malformed("OBJ without a class")
        self.call(items[0], tuple(items[1:]), "OBJ")

    def op_inst(self) -> None:
        module = _decode_line(self.r.readline(), "INST module")
        name = _decode_line(self.r.readline(), "INST name")
        args = self.pop_mark()
        self.call(self.import_(module, name, "INST"), tuple(args), "INST")

    def op_build(self) -> None:
        state = self.pop()
        target = self.top()
        _use(state)
        self.a.builds.append((target, self.offset))
        for part in state if type(state) is tuple else (state,):  # (state, slotstate)
            if isinstance(part, DictValue) and part.items:
                self._check_state(part)
        if type(target) is Call:
            target.state = state
            if self.on_build is not None:
                self.on_build(target, state, self.r)

    def _check_state(self, state: DictValue) -> None:
        keys = {k for k, _ in state.items if type(k) is str}
        if keys.isdisjoint(SINK_KEYS):
            return
        problem = check_state({k: v for k, v in state.items if type(k) is str})
        if problem is not None:
            self.a.problems.append(Problem(
                "pickle.state.code", self.offset,
                f"BUILD gives an object state that its class runs as code: {problem}",
                {"keys": sorted(keys & SINK_KEYS)},
            ))

    def op_persid(self) -> None:
        line = self.r.readline()
        self.push(Persistent(line.decode("latin-1") if line is not None else Opaque("str")))

    def op_binpersid(self) -> None:
        pid = self.pop()
        _use(pid)
        self.push(Persistent(pid))


def r_byte(r: Reader) -> int:
    return r.byte()


_OPS: dict[bytes, str] = {
    b"(": "mark", b".": "stop", b"0": "pop", b"1": "pop_mark", b"2": "dup", b"F": "float",
    b"I": "int", b"J": "binint", b"K": "binint1", b"L": "long", b"M": "binint2", b"N": "none",
    b"P": "persid", b"Q": "binpersid", b"R": "reduce", b"S": "string", b"T": "binstring",
    b"U": "short_binstring", b"V": "unicode", b"X": "binunicode", b"a": "append", b"b": "build",
    b"c": "global", b"d": "dict", b"}": "empty_dict", b"e": "appends", b"g": "get",
    b"h": "binget", b"i": "inst", b"j": "long_binget", b"l": "list", b"]": "empty_list",
    b"o": "obj", b"p": "put", b"q": "binput", b"r": "long_binput", b"s": "setitem",
    b"t": "tuple", b")": "empty_tuple", b"u": "setitems", b"G": "binfloat",
    b"\x80": "proto", b"\x81": "newobj", b"\x82": "ext1", b"\x83": "ext2", b"\x84": "ext4",
    b"\x85": "tuple1", b"\x86": "tuple2", b"\x87": "tuple3", b"\x88": "true", b"\x89": "false",
    b"\x8a": "long1", b"\x8b": "long4", b"B": "binbytes", b"C": "short_binbytes",
    b"\x8c": "short_binunicode", b"\x8d": "binunicode8", b"\x8e": "binbytes8",
    b"\x8f": "empty_set", b"\x90": "additems", b"\x91": "frozenset", b"\x92": "newobj_ex",
    b"\x93": "stack_global", b"\x94": "memoize", b"\x95": "frame", b"\x96": "bytearray8",
    b"\x97": "next_buffer", b"\x98": "readonly_buffer",
}
_HANDLERS: Final = {k[0]: getattr(_Machine, f"op_{v}") for k, v in _OPS.items()}
_DISPATCH: Final[list[Callable[[_Machine], bool | None] | None]] = [
    _HANDLERS.get(code) for code in range(256)
]
"""Indexed by opcode byte; ``None`` for bytes that are not opcodes."""
OPCODES: Final = frozenset(_HANDLERS)
"""Every byte that starts a valid opcode."""


def analyse(
    stream: BinaryIO,
    start: int,
    end: int,
    *,
    max_ops: int,
    max_memo: int = 4_000_000,
    timeout_s: float = 300.0,
    on_build: BuildHook | None = None,
) -> Analysis:
    """Interpret one pickle starting at ``start`` (up to ``end``); never raises on bad input.

    A break in the stream becomes a :class:`Problem`; everything interpreted before the break
    is in the result, because the unpickler would have run it.
    """
    analysis = Analysis(start=start)
    machine = _Machine(
        Reader(stream, start, end), analysis, max_ops, max_memo,
        time.monotonic() + timeout_s, on_build,
    )
    try:
        machine.run()
    except TruncatedError:
        analysis.problems.append(Problem(
            "pickle.stream.truncated", machine.offset, "the stream ends inside the pickle"
        ))
    except BrokenStreamError as exc:
        analysis.problems.append(Problem(exc.rule, machine.offset, exc.message))
    except (RecursionError, MemoryError, OverflowError, ValueError, struct.error) as exc:
        analysis.problems.append(Problem(
            "pickle.stream.malformed", machine.offset, f"cannot interpret: {exc}"
        ))
    if not analysis.complete:
        analysis.end = machine.r.pos
    # Values left on the stack under the returned one are dropped by the unpickler: a call
    # among them keeps ``used`` False and is reported as a call made for its side effects.
    return analysis
