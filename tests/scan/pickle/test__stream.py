"""Scanning pickle streams keeps the cyclic garbage collector out of the way while a pickle is
interpreted and judged (it would only walk objects still in use), without ever switching it
off, and gives the caller back the thresholds it had."""

from __future__ import annotations

import gc
import io
import pickle
from collections.abc import Iterator

import pytest

from bastion.findings import Location
from bastion.scan import ScanLimits
from bastion.scan.pickle import Policy, _machine, _stream

_TWO = pickle.dumps({"w": [1.0, 2.0]}, protocol=2) + pickle.dumps(["b"], protocol=4)


def _scan() -> list[object]:
    return list(_stream.scan_pickles(io.BytesIO(_TWO), Location("x.pkl"), ScanLimits(),
                                     Policy.default(), end=len(_TWO)))


@pytest.fixture
def threshold() -> Iterator[tuple[int, int, int]]:
    """An unusual threshold of the caller's, put back afterwards whatever happens."""
    saved = gc.get_threshold()
    gc.set_threshold(500, 7, 3)
    try:
        yield (500, 7, 3)
    finally:
        gc.set_threshold(*saved)


def test_collections_are_rare_while_each_pickle_is_analysed_and_judged(
    monkeypatch: pytest.MonkeyPatch, threshold: tuple[int, int, int],
) -> None:
    seen: list[tuple[str, bool, tuple[int, ...]]] = []
    analyse, judge = _machine.analyse, _stream.judge

    def watched_analyse(*args: object, **kw: object) -> object:
        seen.append(("analyse", gc.isenabled(), gc.get_threshold()))
        return analyse(*args, **kw)  # type: ignore[arg-type]

    def watched_judge(*args: object, **kw: object) -> object:
        seen.append(("judge", gc.isenabled(), gc.get_threshold()))
        return judge(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_stream, "analyse", watched_analyse)
    monkeypatch.setattr(_stream, "judge", watched_judge)
    assert _scan() == []  # two benign pickles
    assert seen == [("analyse", True, (100_000, 7, 3)), ("judge", True, (100_000, 7, 3))] * 2
    assert gc.get_threshold() == threshold


def test_overlapping_scans_restore_the_callers_threshold_once_the_last_ends(
    threshold: tuple[int, int, int],
) -> None:
    first, second = _stream._collector_relaxed(), _stream._collector_relaxed()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to start ends first (threads need not nest)
    assert gc.get_threshold() == (100_000, 7, 3)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == threshold


def test_a_collector_the_caller_disabled_stays_disabled() -> None:
    gc.disable()
    try:
        assert _scan() == []
        assert not gc.isenabled()
    finally:
        gc.enable()


# -- getattr(owner, "name"): judged as the attribute it reaches -----------------------------------
def _judge(data: bytes, policy: Policy | None = None) -> list[tuple[str, str]]:
    findings = _stream.scan_pickles(io.BytesIO(data), Location("x.pkl"), ScanLimits(),
                                    policy or Policy.default(), end=len(data))
    return sorted((f.rule, f.severity.value) for f in findings)


def _getattr(owner: tuple[str, str], attribute: str) -> bytes:
    """``getattr(owner, attribute)`` as pickle writes a bound method (protocol 2)."""
    return (b"\x80\x02" + b"cbuiltins\ngetattr\n" + b"c" + owner[0].encode() + b"\n"
            + owner[1].encode() + b"\n" + _text(attribute) + b"\x86R")


def _text(value: str) -> bytes:
    return b"X" + len(value).to_bytes(4, "little") + value.encode()


@pytest.mark.parametrize("proto", [2, 4, 5])
def test_a_zoneinfo_datetime_is_clean_and_loads_through_the_restricted_unpickler(
    proto: int,
) -> None:
    """``ZoneInfo`` pickles as ``getattr(ZoneInfo, "_unpickle")(key, 1)``: a reviewed
    reconstructor reached by getattr, not an arbitrary call."""
    import datetime
    import zoneinfo

    from bastion.scan.pickle import RestrictedUnpickler

    value = datetime.datetime(2020, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/London"))
    data = pickle.dumps(value, protocol=proto)
    assert b"getattr" in data
    assert _judge(data) == []
    assert RestrictedUnpickler(io.BytesIO(data)).load() == value


def test_calling_an_unvetted_method_reached_by_getattr_is_critical_and_never_runs(
    tmp_path: object,
) -> None:
    from pathlib import Path

    from bastion.scan.pickle import RestrictedUnpickler, UnsafePickleError

    canary = Path(str(tmp_path)) / "canary"
    # getattr(PosixPath, "touch")(PosixPath(canary)): PosixPath is allowed, its touch is not
    data = (_getattr(("pathlib", "PosixPath"), "touch")[:-1] + b"R" + b"cpathlib\nPosixPath\n"
            + _text(str(canary)) + b"\x85R\x85R.")
    assert ("pickle.getattr.unvetted", "critical") in _judge(data)
    with pytest.raises(UnsafePickleError, match=r"refusing to call .*Path\.touch"):
        RestrictedUnpickler(io.BytesIO(data)).load()
    assert not canary.exists()
    pickle.loads(data)  # the payload is real: plain pickle runs it
    assert canary.exists()


def test_getattr_of_a_dunder_is_critical_and_a_private_attribute_only_as_data() -> None:
    owner = ("collections", "OrderedDict")
    assert ("pickle.getattr.unvetted", "critical") in _judge(_getattr(owner, "__init__") + b".")
    assert _judge(_getattr(owner, "_OrderedDict__map") + b".") == []  # kept, never called
    called = _getattr(owner, "_OrderedDict__map") + b")R."
    assert ("pickle.getattr.unvetted", "critical") in _judge(called)


def test_a_public_attribute_of_an_allowed_class_read_as_data_is_clean() -> None:
    data = _getattr(("collections", "OrderedDict"), "fromkeys") + b"\x85."  # kept in a tuple
    assert _judge(data) == []


def test_getattr_on_an_owner_not_allowed_reports_the_owner_once() -> None:
    data = _getattr(("mylib.models", "Net"), "build") + b")R."
    assert _judge(data) == [("pickle.getattr.unvetted", "critical"),
                            ("pickle.global.unknown", "high")]


def test_getattr_with_a_name_built_at_load_time_stays_a_dangerous_import() -> None:
    # getattr(collections.OrderedDict, str("fromkeys")): the name is not a constant
    data = (b"\x80\x02cbuiltins\ngetattr\ncollections\nOrderedDict\ncbuiltins\nstr\n"
            + _text("fromkeys") + b"\x85R\x86R\x85.")
    assert ("pickle.global.dangerous", "critical") in _judge(data)


def test_build_on_an_attribute_fetched_by_getattr_is_critical() -> None:
    data = _getattr(("collections", "OrderedDict"), "fromkeys") + b"}b\x85."
    assert ("pickle.build.global", "critical") in _judge(data)


def test_an_allowed_dotted_method_may_be_called_through_getattr() -> None:
    data = _getattr(("collections", "OrderedDict"), "fromkeys") + b"(X\x01\x00\x00\x00a\x85tR."
    assert ("pickle.getattr.unvetted", "critical") in _judge(data)
    allowed = Policy.default().allowing(["collections:OrderedDict.fromkeys"])
    assert _judge(data, allowed) == []
