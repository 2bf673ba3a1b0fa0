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

    def watched_judge(*args: object) -> object:
        seen.append(("judge", gc.isenabled(), gc.get_threshold()))
        return judge(*args)  # type: ignore[arg-type]

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
