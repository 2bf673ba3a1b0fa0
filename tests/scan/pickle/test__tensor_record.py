"""Replaying PyTorch's tensor records whole changes nothing: each input analysed with records
replayed and with every opcode interpreted gives the same analysis, and the memo the records
left behind reads back the same."""

from __future__ import annotations

import io
import re
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.scan.corpus import MARK, PROTO2, STOP, g
from tests.scan.pickle.summary import summary

from bastion.scan.pickle import _machine, _tensor_record
from bastion.scan.pickle._machine import Analysis, analyse

_NEVER = re.compile(rb"(?!)")


def run(data: bytes, start: int = 0, max_memo: int = 100_000) -> Analysis:
    return analyse(io.BytesIO(data), start, len(data), max_ops=1_000_000, max_memo=max_memo)


def replayed(data: bytes, monkeypatch: pytest.MonkeyPatch, **kw: int) -> tuple[Analysis, int]:
    """The analysis with records replayed, and how many were."""
    analysis, counts = replayed_by_layout(data, monkeypatch, **kw)
    return analysis, sum(counts.values())


def replayed_by_layout(
    data: bytes, monkeypatch: pytest.MonkeyPatch, **kw: int
) -> tuple[Analysis, Counter[str]]:
    """The analysis with records replayed, and how many were of each layout ("long": every
    store a LONG_BINPUT, "any")."""
    counts: Counter[str] = Counter()
    real = _tensor_record.replay_record

    def counting(*args: object) -> int:
        n = real(*args)  # type: ignore[arg-type]
        if n:
            counts["long" if args[0].re is _tensor_record.LONG_RECORD else "any"] += 1  # type: ignore[attr-defined]
        return n

    with monkeypatch.context() as m:
        m.setattr(_machine, "replay_record", counting)
        return run(data, **kw), counts


def interpreted(data: bytes, monkeypatch: pytest.MonkeyPatch, **kw: int) -> Analysis:
    """The analysis with every opcode interpreted (no record is recognised)."""
    with monkeypatch.context() as m:
        m.setattr(_machine, "RECORD", _NEVER)
        m.setattr(_machine, "LONG_RECORD", _NEVER)
        return run(data, **kw)


def checkpoints() -> Iterator[tuple[str, object]]:
    """What people save: state dicts, optimizer state, views, odd shapes, dtypes, grads."""
    torch.manual_seed(0)
    base = torch.arange(24.0)
    yield "state dict", torch.nn.Sequential(
        torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Conv2d(2, 2, 3)
    ).state_dict()
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    yield "optimizer", {"model": model.state_dict(), "optimizer": opt.state_dict()}
    yield "shapes", {
        "scalar": torch.tensor(3.5), "empty": torch.zeros(0), "five-d": torch.zeros(1, 2, 1, 2, 1),
        "big": torch.zeros(70_000), "wide": torch.zeros(300, 2),
    }
    yield "views", {"view": base[5:], "transposed": base.view(4, 6).t(), "same": base}
    yield "dtypes", {f"{d}{i}": torch.ones(2, dtype=getattr(torch, d))  # a class per dtype
                     for d in ("float16", "bfloat16", "int64", "bool", "uint8") for i in (0, 1)}
    yield "grads", {"leaf": torch.ones(3, requires_grad=True)}
    yield "parameters", list(torch.nn.Linear(2, 2).parameters())
    yield "many", {f"t{i}": torch.zeros(i % 7 + 1) for i in range(400)}  # LONG_ memo forms


def written(obj: object, tmp_path: Path, legacy: bool) -> bytes:
    path = tmp_path / "c.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    raw = path.read_bytes()
    if legacy:
        return raw
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_real_checkpoints_analyse_the_same_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    total: Counter[str] = Counter()
    for what, obj in checkpoints():
        data = written(obj, tmp_path, legacy)
        start = 0
        if legacy:  # the object is the fourth pickle
            for _ in range(3):
                start = run(data, start).end
        fast, counts = replayed_by_layout(data, monkeypatch, start=start)
        slow = interpreted(data, monkeypatch, start=start)
        assert fast.complete and not fast.problems, what
        assert summary(fast) == summary(slow), what
        total += counts
    # All but the first tensor of each storage class are replayed (the first one's imports are
    # not in the memo yet), so the comparison above did test the replay: of both layouts (past
    # the 256th memo entry, "many" stores with LONG_BINPUT).
    assert total["any"] > 40 and total["long"] > 300


# -- crafted records ----------------------------------------------------------------------------
def _get(i: int, wide: bool = False) -> bytes:
    return b"h" + bytes([i]) if i < 256 and not wide else b"j" + struct.pack("<I", i)


def _put(i: int, wide: bool = False) -> bytes:
    """BINPUT, or LONG_BINPUT (``wide``: always, as a pickler does past 256 memo entries)."""
    return b"q" + bytes([i]) if i < 256 and not wide else b"r" + struct.pack("<I", i)


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    return b"J" + struct.pack("<i", v)


def _tuple(values: list[int], put: int | None, wide: bool = False) -> bytes:
    """A size or stride as PyTorch writes it, stored at ``put`` (``None``: not stored)."""
    if not values:
        closed = b")"
    elif len(values) <= 3:
        closed = b"".join(_int(v) for v in values) + b"\x85\x86\x87"[len(values) - 1:len(values)]
    else:
        closed = MARK + b"".join(_int(v) for v in values) + b"t"
    return closed + (b"" if put is None else _put(put, wide))


_SETUP = (
    PROTO2 + g("torch._utils", "_rebuild_tensor_v2") + _put(0)
    + b"X\x07\x00\x00\x00storage" + _put(1) + g("torch", "FloatStorage") + _put(2)
    + b"X\x03\x00\x00\x00cpu" + _put(3) + g("collections", "OrderedDict") + _put(4)
    + b"".join(g("builtins", "getattr") + b")R" + _put(i) + b"0" for i in (5, 6, 7))
)
"""Memo 0-4 hold what a record gets; 5-7 hold three unused call results (to see which a
record marks used)."""

_FIRST_FREE = 8
_gets = st.sampled_from([*range(8)] * 3 + [8, 260])  # mostly set; 8 and 260 never are
_other_puts = st.sampled_from([*range(9, 30)] * 2 + [300, 301, 600, 2, 5, 2, 5])  # some overwrite
_ints = st.integers(0, 300) | st.integers(60_000, 70_000) | st.integers(-5, -1)


@st.composite
def records(draw: st.DrawFn, first_free: int) -> tuple[bytes, list[int]]:
    """A record in one of the layouts PyTorch writes, and the memo indices it stores.

    Mostly numbered as a pickler numbers stores (in order from ``first_free``, the memo's
    length), the only numbering the replay takes; sometimes with one index moved or with
    indices drawn at random (past the end, overwriting a get), which it must leave alone.
    """
    key = draw(st.text("0123456789", min_size=1, max_size=20)).encode()
    size = draw(st.lists(st.integers(0, 70_000), max_size=5)
                | st.lists(st.integers(0, 9), min_size=63, max_size=66))  # the 64 kept
    stride = draw(st.lists(_ints, max_size=5))
    stored = [draw(st.integers(0, 5)) > 0 for _ in range(2)]  # PyTorch stores all but ()
    wide = draw(st.booleans())  # every store a LONG_BINPUT (the layout of LONG_RECORD)
    numbering = draw(st.sampled_from(["pickler"] * 6 + ["moved", "random"]))
    puts = [draw(_other_puts) for _ in range(7)]
    if numbering != "random":
        slots = [k for k in range(7) if k not in (2, 3) or stored[k - 2]]
        for n, k in enumerate(slots):
            puts[k] = first_free + n
        if numbering == "moved":
            puts[draw(st.sampled_from(slots))] = draw(_other_puts)

    def get(stored_before: list[int] | None = None) -> bytes:
        """Now and then a LONG_BINGET of a small index, or (``stored_before``) a read of what
        the record itself stored just before: the replay must not read it too early."""
        if stored_before and draw(st.integers(0, 5)) == 0:
            return _get(draw(st.sampled_from(stored_before)))
        return _get(draw(_gets), draw(st.integers(0, 5)) == 0)

    sized = [p for p, keep in zip(puts[2:4], stored, strict=True) if keep]
    record = b"".join([
        get(), MARK, MARK, get(), get(),
        b"X" + struct.pack("<I", len(key)) + key, _put(puts[0], wide), get(puts[:1]),
        _int(draw(st.integers(0, 70_000))), b"N" if draw(st.booleans()) else b"", b"t",
        _put(puts[1], wide), b"Q", _int(draw(st.integers(0, 70_000))),
        _tuple(size, puts[2] if stored[0] else None, wide),
        _tuple(stride, puts[3] if stored[1] else None, wide),
        b"\x88" if draw(st.booleans()) else b"\x89", get(puts[:2] + sized), b")R",
        _put(puts[4], wide), b"t", _put(puts[5], wide), b"R", _put(puts[6], wide),
    ])
    return record, puts[:2] + puts[4:] + sized


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Records (some damaged), then a list of memo reads, so the memo left is compared too
    (reads only of indices an intact record stored: a read of an unset one ends the stream)."""
    body = b""
    stored = set(range(_FIRST_FREE))
    for _ in range(draw(st.integers(1, 4))):
        first_free = min(set(range(len(stored) + 1)) - stored)
        intact, puts = draw(records(first_free))
        record = intact
        if draw(st.integers(0, 3)) == 0:
            at = draw(st.integers(0, len(intact) - 1))
            record = intact[:at] + bytes([draw(st.integers(0, 255))]) + intact[at + 1:]
        else:
            stored.update(puts)
        body += record + b"0"  # POP: the next record starts on a clean stack
    reads = b"".join(_get(i) for i in draw(st.lists(st.sampled_from(sorted(stored)),
                                                    max_size=16)))
    return _SETUP + body + b"]" + MARK + reads + b"e" + STOP


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(data=streams(), max_memo=st.sampled_from([100_000, 12, 20]))
def test_crafted_records_analyse_the_same_both_ways(
    data: bytes, max_memo: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, _ = replayed(data, monkeypatch, max_memo=max_memo)
    slow = interpreted(data, monkeypatch, max_memo=max_memo)
    assert summary(fast) == summary(slow)


@pytest.mark.parametrize(("wide", "layout"), [(False, "any"), (True, "long")])
def test_a_plain_record_is_replayed_and_marks_what_it_uses(
    monkeypatch: pytest.MonkeyPatch, wide: bool, layout: str,
) -> None:
    """The hand-built record of the strategies is one the replay takes, in either layout (else
    the property above would compare the machine with itself)."""
    record = b"".join([
        _get(0), MARK, MARK, _get(1), _get(5), b"X\x01\x00\x00\x007", _put(8, wide), _get(3),
        _int(6), b"t", _put(9, wide), b"Q", _int(0), _tuple([2, 3], 10, wide),
        _tuple([3, 1], 11, wide), b"\x89", _get(4), b")R", _put(12, wide), b"t", _put(13, wide),
        b"R", _put(14, wide),
    ])
    data = _SETUP + record + b"0]" + MARK + _get(10) + _get(13) + b"e" + STOP
    fast, counts = replayed_by_layout(data, monkeypatch)
    assert counts == {layout: 1}
    assert summary(fast) == summary(interpreted(data, monkeypatch))
    getattr_call, _, _, hooks, result = fast.calls
    assert getattr_call.used  # the storage class slot held it: TUPLE used it
    assert hooks.used and not result.used  # the record's result was POPped
    assert fast.result.items[0] == (2, 3)  # type: ignore[attr-defined]


def _plain_record(wide: bool, at: dict[str, int] | None = None,
                  gets: dict[str, int] | None = None, key: bytes = b"X\x01\x00\x00\x007") -> bytes:
    """The plain record above, with some of its store (``at``) or read (``gets``) indices or
    its key changed."""
    at = {"key": 8, "pid": 9, "size": 10, "stride": 11, "hooks": 12, "args": 13, "result": 14} \
        | (at or {})
    gets = {"location": 3, "hooks": 4} | (gets or {})
    return b"".join([
        _get(0), MARK, MARK, _get(1), _get(2), key, _put(at["key"], wide),
        _get(gets["location"]), _int(6), b"t", _put(at["pid"], wide), b"Q", _int(0),
        _tuple([2, 3], at["size"], wide), _tuple([3, 1], at["stride"], wide), b"\x89",
        _get(gets["hooks"]), b")R", _put(at["hooks"], wide), b"t", _put(at["args"], wide), b"R",
        _put(at["result"], wide),
    ])


@pytest.mark.parametrize("wide", [False, True], ids=["short", "long"])
@pytest.mark.parametrize(("store", "read"), [
    ("key", "location"), ("key", "hooks"), ("pid", "hooks"), ("size", "hooks"),
    ("stride", "hooks"),
])
def test_a_record_reading_what_it_stored_itself_is_interpreted(
    monkeypatch: pytest.MonkeyPatch, wide: bool, store: str, read: str,
) -> None:
    """A read of an index the record stored earlier sees the new value; the replay reads every
    index first, so such a record must go opcode by opcode."""
    stores = {"key": 8, "pid": 9, "size": 10, "stride": 11}
    data = _SETUP + _plain_record(wide, gets={read: stores[store]}) + STOP
    fast, counts = replayed_by_layout(data, monkeypatch)
    assert not counts
    assert summary(fast) == summary(interpreted(data, monkeypatch))
    assert fast.complete


@pytest.mark.parametrize("wide", [False, True], ids=["short", "long"])
@pytest.mark.parametrize("stores", [
    {"key": 9},  # a gap: 8 is never stored, 9 lies past the memo's end
    {"key": 6},  # overwrites an entry (index 6 held a call)
    {"result": 6},  # the last store overwrites instead of appending
    {"size": 11, "stride": 10},  # swapped
    {"hooks": 300},  # far past the end
])
def test_a_record_numbered_unlike_a_pickler_is_interpreted(
    monkeypatch: pytest.MonkeyPatch, wide: bool, stores: dict[str, int],
) -> None:
    """Only stores that append in order are replayed; any other numbering is interpreted,
    and the memo it leaves reads back the same."""
    reads = b"".join(_get(i) for i in (*range(8), *stores.values()))
    data = _SETUP + _plain_record(wide, at=stores) + b"0]" + MARK + reads + b"e" + STOP
    fast, counts = replayed_by_layout(data, monkeypatch)
    assert not counts
    assert summary(fast) == summary(interpreted(data, monkeypatch))
    assert fast.complete and not fast.problems


@pytest.mark.parametrize("wide", [False, True], ids=["short", "long"])
def test_a_record_after_a_store_past_the_end_is_interpreted(
    monkeypatch: pytest.MonkeyPatch, wide: bool,
) -> None:
    """With an entry stored past the memo's end, the record's own stores are not the
    appends they look like (the memo would reach that entry): interpreted."""
    data = (_SETUP + b"N" + _put(10, wide) + b"0" + _plain_record(wide) + b"0]" + MARK
            + b"".join(_get(i) for i in range(15)) + b"e" + STOP)
    fast, counts = replayed_by_layout(data, monkeypatch)
    assert not counts
    assert summary(fast) == summary(interpreted(data, monkeypatch))
    assert fast.complete and not fast.problems


@pytest.mark.parametrize("wide", [False, True], ids=["short", "long"])
@pytest.mark.parametrize("key", [
    b"X\x01\x00\x00\x0070",  # the key is "7"; then POP (0x30, a digit) drops it
    b"X\x02\x00\x00\x007",  # declared longer than the digits there
], ids=["digit-opcode-after", "short"])
def test_a_key_whose_declared_length_is_not_its_digits_is_interpreted(
    monkeypatch: pytest.MonkeyPatch, wide: bool, key: bytes,
) -> None:
    data = _SETUP + _plain_record(wide, key=key) + STOP
    fast, counts = replayed_by_layout(data, monkeypatch)
    assert not counts
    assert summary(fast) == summary(interpreted(data, monkeypatch))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_training_checkpoints_stores_take_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    """Memo stores between records (optimizer state: a small dict per parameter, filled by
    SETITEMS, with hundreds of memo entries already made) are appended inline; only one that
    straddles a buffer refill takes its handler."""
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(40)])
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    data = written({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path, legacy)
    start = 0
    if legacy:
        for _ in range(3):
            start = run(data, start).end
    handled: Counter[int] = Counter()
    dispatch = list(_machine._DISPATCH)

    def counted(code: int) -> object:
        handler = dispatch[code]
        assert handler is not None

        def count(machine: object) -> object:
            handled[code] += 1
            return handler(machine)  # type: ignore[arg-type]
        return count

    monkeypatch.setattr(_machine, "_DISPATCH", [
        counted(code) if handler else None for code, handler in enumerate(dispatch)
    ])
    fill = _machine.Reader._fill
    refills = []

    def counting_fill(reader: _machine.Reader, n: int) -> None:
        refills.append(n)
        fill(reader, n)

    monkeypatch.setattr(_machine.Reader, "_fill", counting_fill)
    a = run(data, start)
    assert a.complete and not a.problems and a.ops > 4000
    assert handled[0x71] + handled[0x72] + handled[0x94] <= len(refills), handled
