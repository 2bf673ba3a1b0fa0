"""Pickle and joblib files: joblib's inline arrays are skipped the way joblib reads them."""

from __future__ import annotations

import io
import os
import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.findings import Finding, Location, Severity
from bastion.scan import ScanLimits
from bastion.scan.formats.pickle import PickleScanner
from bastion.scan.interface import Source


def run(data: bytes) -> list[Finding]:
    source = Source(Location("x"), len(data), lambda: io.BytesIO(data))
    return [f for f in PickleScanner().scan(source, ScanLimits()) if isinstance(f, Finding)]


def dump(obj: object) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    return buf.getvalue()


def test_joblib_inline_arrays_of_every_kind_are_skipped_exactly() -> None:
    obj = {"f": np.ones((7, 3)), "i": np.arange(5, dtype=np.int8), "u": np.array(["ab", "c"]),
           "e": np.zeros(0), "s": np.float32(1), "fo": np.asfortranarray(np.ones((3, 2))),
           "o": np.array([1, "x", None], dtype=object), "after": [1, 2, 3]}
    assert run(dump(obj)) == []


def test_payload_after_joblib_arrays_is_found(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'CANARY'}",)

    rules = [f.rule for f in run(dump({"a": np.ones(1000), "z": Evil()}))]
    assert rules == ["pickle.global.dangerous"]


def test_unreadable_array_layout_stops_with_a_finding() -> None:
    data = dump({"a": np.ones(10)}).replace(b"shape", b"shapf")
    assert [f.rule for f in run(data)] == ["joblib.array.undetermined"]


def test_trailing_bytes_after_the_last_pickle() -> None:
    rules = [f.rule for f in run(pickle.dumps([1]) + b"\xff\xfe garbage")]
    assert rules == ["pickle.trailing-data"]


_JOBLIB = dump({"a": np.arange(12.0), "o": np.array([None, "s"], dtype=object)})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_JOBLIB) - 1), st.integers(0, 255)), max_size=6))
def test_fuzz_mutated_joblib_never_raises(mutations) -> None:
    data = bytearray(_JOBLIB)
    for pos, value in mutations:
        data[pos] = value
    for f in run(bytes(data)):
        assert isinstance(f, Finding)


@pytest.fixture
def old_joblib(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """joblib.dump writing arrays as joblib < 1.2 did: no alignment padding byte.

    joblib still reads such files. With padding, ``pickle.load`` breaks on the padding byte
    (not an opcode); without it, the array's first byte is the next opcode it interprets.
    """
    from joblib import numpy_pickle

    init = numpy_pickle.NumpyArrayWrapper.__init__

    def unaligned(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        del self.numpy_array_alignment_bytes

    monkeypatch.setattr(numpy_pickle.NumpyArrayWrapper, "__init__", unaligned)
    yield
    monkeypatch.undo()


def hide(payload: bytes, path: Path) -> bytes:
    """A real joblib dump whose one array's bytes are ``payload``; joblib reads it back."""
    array = np.frombuffer(payload, dtype=np.uint8)
    joblib.dump({"coef": array}, path)
    assert (joblib.load(path)["coef"] == array).all()  # joblib sees an array
    return path.read_bytes()


def test_pickle_hidden_in_joblib_array_bytes(tmp_path, canary, old_joblib) -> None:
    """joblib skips array bytes; pickle.load would run them. Both readings are scanned."""
    from bastion.scan.pickle import UnsafePickleError, restricted

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {canary}",)

    data = hide(pickle.dumps(Evil(), protocol=2), tmp_path / "model.joblib")
    with pytest.raises(UnsafePickleError, match=r"posix\.system"):  # pickle.load sees a call
        restricted.loads(data)
    found = run(data)
    assert [(f.rule, f.severity, f.evidence["global"]) for f in found] == [
        ("joblib.array.hidden-pickle", Severity.CRITICAL, "posix.system")
    ]
    assert "importing and calling posix.system" in found[0].title
    assert not canary.exists()


# getattr(__import__("os"), "system")("touch <canary>"): the callable of the last REDUCE is
# the result of a call, not an import.
def _getattr_chain(canary: Path) -> bytes:
    return (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR"
            + f"(Vtouch {canary}\n".encode() + b"tR.")


def test_hidden_call_of_a_call_result_is_judged(tmp_path, canary, old_joblib) -> None:
    from bastion.scan.pickle import UnsafePickleError, restricted

    data = hide(_getattr_chain(canary), tmp_path / "model.joblib")
    with pytest.raises(UnsafePickleError, match=r"builtins\.__import__"):
        restricted.loads(data)
    found = run(data)
    assert [(f.rule, f.severity, f.evidence.get("global"), f.evidence.get("opcode"))
            for f in found] == [
        ("joblib.array.hidden-pickle", Severity.CRITICAL, "builtins.getattr", "GLOBAL"),
        ("joblib.array.hidden-pickle", Severity.CRITICAL, "builtins.__import__", "GLOBAL"),
        ("joblib.array.hidden-pickle", Severity.CRITICAL, None, "REDUCE"),
    ]
    call = found[2]
    assert call.evidence["callable"].startswith("the result of REDUCE at offset")
    array_offset = call.evidence["array_offset"]
    assert call.location.offset == array_offset + _getattr_chain(canary).rindex(b"R")
    assert not canary.exists()


def test_hidden_calls_and_builds_are_judged_even_when_every_import_is_allowed(
    tmp_path, old_joblib
) -> None:
    # OrderedDict()() and BUILD (None, {"x": "y"}) on the OrderedDict class itself: both
    # imports are on the allowlist, so only what is done with them can be reported. (Run,
    # each raises TypeError: harmless.)
    call = b"ccollections\nOrderedDict\n)R)R."
    build = b"ccollections\nOrderedDict\nN}Vx\nVy\ns\x86b."
    found = run(hide(call, tmp_path / "call.joblib"))
    assert [(f.rule, f.severity, f.evidence["opcode"]) for f in found] == [
        ("joblib.array.hidden-pickle", Severity.CRITICAL, "REDUCE")
    ]
    found = run(hide(build, tmp_path / "build.joblib"))
    assert [(f.rule, f.severity, f.evidence["target"]) for f in found] == [
        ("joblib.array.hidden-pickle", Severity.CRITICAL, "collections.OrderedDict")
    ]
    assert "BUILD" in found[0].title


@pytest.mark.parametrize(("lead", "stop"), [
    pytest.param(b"K\x05)R", "'int' object is not callable", id="calls-an-int"),
    pytest.param(b"\x82\x07", "unregistered extension code 7", id="extension-code"),
    pytest.param(b"c\x00\x00\nx\n", "refusing to import \x00\x00.x", id="nul-module"),
])
def test_nothing_after_a_certain_break_is_judged(
    tmp_path, canary, old_joblib, lead, stop
) -> None:
    from bastion.scan.pickle import restricted

    # pickle.load stops at ``lead``, before it reaches the import of os.system. (The NUL
    # module is refused by the allowlist here; a plain load raises ModuleNotFoundError.)
    payload = lead + f"cposix\nsystem\n(Vtouch {canary}\ntR.".encode()
    data = hide(payload, tmp_path / "model.joblib")
    with pytest.raises((TypeError, ValueError, pickle.UnpicklingError), match=re.escape(stop)):
        restricted.loads(data)
    assert [f for f in run(data) if f.severity >= Severity.MEDIUM] == []
    assert not canary.exists()


@pytest.mark.parametrize("aligned", [True, False], ids=["joblib", "joblib<1.2"])
def test_real_sklearn_dumps_have_no_finding_in_either_reading(
    tmp_path, aligned, request
) -> None:
    from sklearn.datasets import load_iris
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import LabelEncoder, StandardScaler

    if not aligned:
        request.getfixturevalue("old_joblib")
    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    models = {
        "pipeline": make_pipeline(StandardScaler(), PCA(2), LogisticRegression(max_iter=300))
        .fit(x, y),
        "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y),
        "boosting": GradientBoostingClassifier(n_estimators=3, random_state=0).fit(x, y),
        "labels": LabelEncoder().fit(names),
        "tfidf": TfidfVectorizer().fit(["a cat sat", "on the mat", "cats and dogs\n"]),
    }
    for name, model in models.items():
        joblib.dump(model, tmp_path / name)
        serious = [(f.rule, f.title) for f in run((tmp_path / name).read_bytes())
                   if f.severity >= Severity.MEDIUM]
        assert serious == [], name


def test_random_arrays_in_old_joblib_files_have_no_finding(old_joblib) -> None:
    # joblib < 1.2 files put the array's first byte where pickle.load reads its next opcode.
    # Numbers break that reading within a few opcodes; before this reading stopped at
    # certain breaks, about 1 array in 6 here was reported (extension codes, and small
    # integers starting with 99 read as GLOBAL "\x00\x00...").
    rng = np.random.default_rng(0)
    for i in range(600):
        n = int(rng.integers(1, 40))
        array = [
            rng.standard_normal(n), rng.standard_normal(n).astype(np.float32),
            rng.integers(0, 200, n), rng.integers(0, 256, n).astype(np.uint8),
            rng.integers(-3, 3, n).astype(np.int32),
            np.array([99, 10, 10, *rng.integers(0, 100, n)], dtype=np.int64),
        ][i % 6]
        serious = [f.title for f in run(dump({"a": array})) if f.severity >= Severity.MEDIUM]
        assert serious == [], (i, array)
