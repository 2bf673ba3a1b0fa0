"""Scanning pickle streams keeps the cyclic garbage collector out of the way while a pickle is
interpreted and judged (it would only walk objects still in use), and leaves it as it was."""

from __future__ import annotations

import gc
import io
import pickle

import pytest

from bastion.findings import Location
from bastion.scan import ScanLimits
from bastion.scan.pickle import Policy, _machine, _stream

_TWO = pickle.dumps({"w": [1.0, 2.0]}, protocol=2) + pickle.dumps(["b"], protocol=4)


def _scan() -> list[object]:
    return list(_stream.scan_pickles(io.BytesIO(_TWO), Location("x.pkl"), ScanLimits(),
                                     Policy.default(), end=len(_TWO)))


def test_the_collector_is_off_while_each_pickle_is_analysed_and_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enabled: list[tuple[str, bool]] = []
    analyse, judge = _machine.analyse, _stream.judge

    def watched_analyse(*args: object, **kw: object) -> object:
        enabled.append(("analyse", gc.isenabled()))
        return analyse(*args, **kw)  # type: ignore[arg-type]

    def watched_judge(*args: object) -> object:
        enabled.append(("judge", gc.isenabled()))
        return judge(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_stream, "analyse", watched_analyse)
    monkeypatch.setattr(_stream, "judge", watched_judge)
    assert gc.isenabled()
    assert _scan() == []  # two benign pickles
    assert enabled == [("analyse", False), ("judge", False)] * 2
    assert gc.isenabled()


def test_a_collector_the_caller_disabled_stays_disabled() -> None:
    gc.disable()
    try:
        assert _scan() == []
        assert not gc.isenabled()
    finally:
        gc.enable()
