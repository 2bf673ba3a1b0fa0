"""The symbolic machine on hostile streams: no exception escapes, no unbounded work or memory."""

from __future__ import annotations

import collections
import io
import pickle
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.scan.corpus import MARK, PROTO2, PROTO4, REDUCE, STOP, TUPLE1, g, u
from tests.scan.pickle.summary import summary

from bastion.scan.pickle._machine import OPCODES, Call, Global, analyse
from bastion.scan.pickle._values import ListValue, Opaque


def run(data: bytes, **kw: int) -> object:
    return analyse(io.BytesIO(data), 0, len(data), max_ops=kw.get("max_ops", 1_000_000),
                   max_memo=kw.get("max_memo", 1000))


class CountingStream(io.BytesIO):
    """Counts the bytes actually read (skips by seeking must not read)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.bytes_read += len(data)
        return data

    def readline(self, n: int | None = -1) -> bytes:
        data = super().readline(n)
        self.bytes_read += len(data)
        return data


def test_large_payloads_are_skipped_not_read() -> None:
    blob = bytes(8 << 20)
    data = pickle.dumps({"w": blob, "s": "x" * (1 << 20)}, protocol=4)
    stream = CountingStream(data)
    a = analyse(stream, 0, len(data), max_ops=1000)
    assert a.complete
    assert stream.bytes_read < 256 * 1024  # buffered reads of opcodes, not the 9 MiB


def test_bytearray8_and_binunicode8_are_skipped() -> None:
    n = 1 << 20
    data = (PROTO4 + b"\x96" + struct.pack("<Q", n) + bytes(n) + b"0"
            + b"\x8d" + struct.pack("<Q", n) + b"a" * n + STOP)
    stream = CountingStream(data)
    a = analyse(stream, 0, len(data), max_ops=100)
    assert a.complete and stream.bytes_read < 4 * 65536  # vs 2 MiB of payload


def test_absurd_declared_length_is_truncation_not_allocation() -> None:
    data = PROTO4 + b"\x8e" + struct.pack("<Q", 2**62) + b"abc"
    a = run(data)
    assert [p.rule for p in a.problems] == ["pickle.stream.truncated"]


def test_huge_frame_is_reported_without_reading_it() -> None:
    data = PROTO4 + b"\x95" + struct.pack("<Q", 2**40) + b"N."
    a = run(data)
    assert not a.complete
    assert a.problems[0].rule == "pickle.stream.truncated"


def test_memo_cycles_terminate() -> None:
    # a list that contains itself (via the memo), many times over
    data = PROTO2 + b"]q\x00" + (b"h\x00a" * 10_000) + STOP
    a = run(data)
    assert a.complete and not a.problems


def test_invalid_utf8_in_names_is_a_finding() -> None:
    data = PROTO2 + b"c\xff\xfe\nsystem\n" + STOP
    a = run(data)
    assert a.problems[0].rule == "pickle.stream.malformed"
    assert "UTF-8" in a.problems[0].message


def test_deep_marks_are_fine() -> None:
    data = PROTO2 + MARK * 100_000 + b"N" + STOP
    a = run(data)
    assert a.complete


def test_op_limit_stops_with_a_problem() -> None:
    data = PROTO2 + b"N0" * 200_000 + b"N."
    a = run(data, max_ops=70_000)
    assert [p.rule for p in a.problems] == ["pickle.limit.ops"]


def test_memo_limit_stops_with_a_problem() -> None:
    data = PROTO2 + b"N" + b"".join(b"r" + struct.pack("<I", i) for i in range(2000)) + STOP
    a = run(data, max_memo=1000)
    assert [p.rule for p in a.problems] == ["pickle.limit.memo"]


def test_reduce_resolves_callable_from_memo() -> None:
    data = (PROTO2 + g("os", "system") + b"q\x05" + b"0" + b"h\x05" + u("x") + TUPLE1 + REDUCE
            + STOP)
    a = run(data)
    (call,) = a.calls
    assert isinstance(call, Call) and isinstance(call.func, Global)
    assert (call.func.module, call.func.name) == ("os", "system")
    assert call.used


def test_protocol_switch_mid_stream_is_tracked() -> None:
    data = PROTO4 + b"\x80\x02" + g("__builtin__", "eval") + STOP
    a = run(data)
    assert a.globals[0].proto == 2


def test_every_opcode_byte_is_known() -> None:
    import pickletools

    assert {op.code.encode("latin-1")[0] for op in pickletools.opcodes} == set(OPCODES)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    a = run(data)
    assert a.complete or a.problems


_FAR = st.sampled_from([255, 256, 300, 1000, 70_000])


@st.composite
def memo_programs(draw: st.DrawFn) -> bytes:
    """Values stored with every PUT variant and MEMOIZE (mostly at the next index, as a
    pickler numbers them; also past the end, over earlier entries and at negative indices),
    and reads of them (mostly of stored indices) appended to a list."""
    stored: dict[int, None] = {}  # only to aim the reads; CPython is the oracle
    body = []
    for _ in range(draw(st.integers(0, 60))):
        kind = draw(st.sampled_from(["put", "binput", "long_binput", "memoize", "read"]))
        if kind == "read":
            index = draw(st.sampled_from(sorted(stored)) if stored and draw(st.integers(0, 9))
                         else st.integers(-1, 12) | _FAR)
            op = draw(st.sampled_from([b"g%d\n" % index] + ([] if index < 0 else [
                b"j" + struct.pack("<I", index)] + ([b"h" + bytes([index])] if index < 256
                                                     else []))))
            body.append(op + b"a")  # APPEND to the list at the bottom
            continue
        value = draw(st.integers(0, 255))  # BININT1, or a string: BINUNICODE and its store
        push = b"K" + bytes([value]) if draw(st.booleans()) else u(f"v{value}")
        if kind == "memoize":
            index = len(stored)
            op = b"\x94"
        else:
            index = draw(st.sampled_from([len(stored)] * 3 + [len(stored) + 1, *stored])
                         | st.integers(0, 12) | _FAR | (st.just(-1) if kind == "put"
                                                         else st.nothing()))
            op = (b"p%d\n" % index if kind == "put" else b"r" + struct.pack("<I", index)
                  if kind == "long_binput" or index > 255 else b"q" + bytes([index]))
        if index >= 0:
            stored[index] = None
        body.append(push + op + b"0")  # then POP it
    return PROTO4 + b"]" + b"".join(body) + STOP


@settings(max_examples=500, deadline=None)
@given(memo_programs(), st.sampled_from([1_000_000, 1]))
def test_memo_agrees_with_cpythons_unpickler(data: bytes, buffer: int) -> None:
    """Stores in order, past the end, over earlier ones, MEMOIZE among them (it stores at the
    number of entries, not the next index): the values read back are CPython's, and a read of
    an index never stored (or a negative PUT) breaks the stream where CPython stops. With a
    one-byte buffer every opcode takes its handler instead of the fast path."""
    from bastion.scan.pickle import _machine

    try:
        expected: list[object] | None = pickle.loads(data)  # no imports: ints, strs, a list
    except (KeyError, ValueError, pickle.UnpicklingError):
        expected = None
    saved = _machine._BUFFER
    _machine._BUFFER = min(buffer, saved)
    try:
        a = run(data, max_memo=1_000_000)
    finally:
        _machine._BUFFER = saved
    if expected is None:
        assert not a.complete
        assert [p.rule for p in a.problems] == ["pickle.stream.malformed"]
    else:
        assert a.complete and not a.problems
        assert isinstance(a.result, ListValue) and a.result.items == expected


_PIECES = [bytes([c]) for c in OPCODES] + [
    u("os"), u("system"), b"K\x01", b"q\x00", b"h\x00", b"\x94",
    b"\x95\x05\x00\x00\x00\x00\x00\x00\x00",
    g("os", "system"), b"\x93", b"R", b"b", b"(", b"t", b"\x8c\x02ab",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=60))
def test_fuzz_opcode_soup_never_raises(pieces: list[bytes]) -> None:
    data = PROTO4 + b"".join(pieces) + STOP
    a = run(data)
    assert a.complete or a.problems


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary() | st.binary(min_size=256, max_size=1000)  # SHORT_BINBYTES and BINBYTES
    | st.complex_numbers(allow_nan=False) | st.decimals(allow_nan=False) | st.fractions()
    | st.dates(),  # these four pickle as imports and calls
    lambda inner: st.lists(inner) | st.tuples(inner, inner, inner) | st.tuples(inner, inner)
    | st.dictionaries(st.text(), inner) | st.frozensets(st.integers())
    | st.builds(collections.OrderedDict, st.lists(st.tuples(st.text(), inner))),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.builds(lambda v, p: pickle.dumps([v, v], protocol=p), _VALUES, st.integers(0, 5)),
        st.builds(lambda v, p, cut: pickle.dumps([v, v], protocol=p)[:cut],  # truncated
                  _VALUES, st.integers(0, 5), st.integers(0, 400)),
        st.builds(lambda ps: PROTO2 + b"".join(ps) + STOP, st.lists(st.sampled_from(_PIECES))),
        st.builds(lambda d, p: pickle.dumps([d, d, *range(9)], protocol=p),  # 64 items kept
                  st.dictionaries(st.integers(), st.none() | st.dates(), min_size=65,
                                  max_size=140), st.integers(1, 5)),
        st.binary(max_size=300),
    ),
    st.sampled_from([1000, 4]),  # and where the memo limit stops a store
)
def test_fast_path_agrees_with_the_handlers(data: bytes, max_memo: int) -> None:
    """The inlined opcodes must do exactly what their handlers do: the same input run with a
    one-byte buffer (so every opcode takes its handler) gives the same analysis."""
    from bastion.scan.pickle import _machine

    fast = run(data, max_memo=max_memo)
    saved = _machine._BUFFER
    _machine._BUFFER = 1
    try:
        slow = run(data, max_memo=max_memo)
    finally:
        _machine._BUFFER = saved
    assert summary(fast) == summary(slow)


@pytest.mark.parametrize(("opcode", "header", "kind"), [
    (b"B", "<I", "bytes"), (b"\x8e", "<Q", "bytes"), (b"T", "<i", "str"),
    (b"\x96", "<Q", "bytearray"),
])
def test_a_payload_too_long_to_keep_says_where_it_is(opcode: bytes, header: str,
                                                      kind: str) -> None:
    """So that a scan can read it again (``torch.storage._load_from_bytes``)."""
    payload = bytes(range(256)) * 300  # 76,800 bytes: past what the machine keeps
    data = PROTO4 + opcode + struct.pack(header, len(payload)) + payload + TUPLE1 + STOP
    a = run(data)
    assert a.complete and type(a.result) is tuple
    [value] = a.result
    assert isinstance(value, Opaque) and value.kind == kind and value.size == len(payload)
    assert value.offset is not None
    assert data[value.offset:value.offset + value.size] == payload
