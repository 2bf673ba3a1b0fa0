"""What real libraries pickle scans clean and loads under the same policy; each class of object
the benign zoo found has a sample here, beside a malicious look-alike that must not pass.

Fixtures are built by the libraries themselves (pandas, SciPy, NumPy, scikit-learn, re).
"""

from __future__ import annotations

import functools
import io
import pickle
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.interpolate
import scipy.sparse
import scipy.stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.model_selection import GridSearchCV

from bastion.findings import Finding, Location, Severity
from bastion.scan import ScanLimits
from bastion.scan.formats.pickle import PickleScanner
from bastion.scan.interface import Source
from bastion.scan.pickle import RestrictedUnpickler, UnsafePickleError


def _serious(data: bytes) -> list[tuple[str, str]]:
    source = Source(Location("x.pkl"), len(data), lambda: io.BytesIO(data))
    return sorted({(f.rule, f.title) for f in PickleScanner().scan(source, ScanLimits())
                   if isinstance(f, Finding) and f.severity >= Severity.HIGH})


def _load(data: bytes) -> object:
    return RestrictedUnpickler(io.BytesIO(data)).load()


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "category": pd.Categorical(["a", "b", "a"]),
        "when": pd.date_range("2024-01-01", periods=3, tz="Europe/London"),
        "period": pd.period_range("2024-01", periods=3, freq="M"),
        "interval": pd.interval_range(0, 3),
        "sparse": pd.arrays.SparseArray([0.0, 1.0, 0.0]),
        "count": pd.array([1, None, 3], dtype="Int64"),
        "flag": pd.array([True, None, False], dtype="boolean"),
        "text": pd.array(["x", None, "z"], dtype="string"),
        "delta": pd.to_timedelta([1, 2, 3], unit="s"),
    }, index=pd.MultiIndex.from_tuples([("p", 1), ("p", 2), ("q", 1)]))


def _same_frame(a: object, b: object) -> bool:
    pd.testing.assert_frame_equal(a, b)  # type: ignore[arg-type]
    return True


def _same_array(a: object, b: object) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def _same_sparse(a: object, b: object) -> bool:
    return type(a) is type(b) and (a != b).nnz == 0  # type: ignore[operator,attr-defined]


def _same_pdf(a: object, b: object) -> bool:
    x = np.linspace(0.1, 3, 5)
    return bool(np.allclose(a.pdf(x), b.pdf(x)))  # type: ignore[attr-defined]


def _same_call(a: object, b: object) -> bool:
    x = np.linspace(0.5, 2.5, 5)
    return bool(np.allclose(a(x), b(x)))  # type: ignore[operator]


def _same_pattern(a: object, b: object) -> bool:
    return a.__self__.pattern == b.__self__.pattern  # type: ignore[attr-defined]


def _same_scorer(a: object, b: object) -> bool:
    return a.scoring._score_func is b.scoring._score_func  # type: ignore[attr-defined]


_x = np.linspace(0, 3, 7)
BENIGN: dict[str, tuple[Callable[[], object], Callable[[object, object], bool]]] = {
    "pandas frame of every dtype": (_frame, _same_frame),
    "pandas timestamps and offsets": (
        lambda: pd.DataFrame({"t": [pd.Timestamp("2024-01-01"), pd.NaT],
                              "o": [pd.offsets.Day(2), pd.offsets.MonthEnd()]}), _same_frame),
    "scipy csr matrix": (lambda: scipy.sparse.random(5, 4, density=0.4, format="csr",
                                                     random_state=0), _same_sparse),
    "scipy coo array": (lambda: scipy.sparse.coo_array(np.eye(3)), _same_sparse),
    "scipy frozen normal": (lambda: scipy.stats.norm(1.0, 2.0), _same_pdf),
    "scipy frozen gamma": (lambda: scipy.stats.gamma(2.0), _same_pdf),
    "scipy cubic spline": (lambda: scipy.interpolate.CubicSpline(_x, _x ** 2), _same_call),
    "scipy interp1d (a method stored by name)": (
        lambda: scipy.interpolate.interp1d(_x, np.sin(_x)), _same_call),
    "numpy ufunc": (lambda: np.add, lambda a, b: a is b),
    "numpy masked array": (lambda: np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]), _same_array),
    "numpy record array": (lambda: np.rec.fromrecords([(1, 2.0)], names="a,b"), _same_array),
    "a compiled pattern's bound method": (lambda: re.compile(r"^\d+").search, _same_pattern),
    "a partial of a reviewed function": (
        lambda: functools.partial(accuracy_score, normalize=False),
        lambda a, b: a.func is b.func and a.keywords == b.keywords),  # type: ignore[attr-defined]
    "grid search with a scorer function": (
        lambda: GridSearchCV(LogisticRegression(), {"C": [1.0]},
                             scoring=make_scorer(accuracy_score)), _same_scorer),
}


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("protocol", [2, 5])
@pytest.mark.parametrize("name", list(BENIGN))
def test_what_libraries_pickle_scans_clean_and_loads_restricted(name: str, protocol: int) -> None:
    make, same = BENIGN[name]
    value = make()
    data = pickle.dumps(value, protocol=protocol)
    assert _serious(data) == []
    assert same(_load(data), value)


# -- look-alikes ---------------------------------------------------------------------------------
def _tamper(data: bytes, old: str, new: str) -> bytes:
    def unicode(text: str) -> bytes:
        raw = text.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    assert unicode(old) in data
    return data.replace(unicode(old), unicode(new))


def test_a_scipy_distribution_whose_state_holds_code_is_critical_and_never_runs(
    canary: Path,
) -> None:
    """rv_generic.__setstate__ exec()s the state's _parse_arg_template: a benign class made
    to run the pickle's code. Only scipy's own argument parsers pass."""
    data = pickle.dumps(scipy.stats.norm(0, 1), protocol=2)  # no frames to resize
    template = scipy.stats.norm._parse_arg_template  # type: ignore[attr-defined]
    evil = _tamper(data, template, template + f"\nopen({str(canary)!r}, 'w').close()\n")
    assert [rule for rule, _ in _serious(evil)] == ["pickle.state.code"]
    with pytest.raises(UnsafePickleError, match="runs as code"):
        _load(evil)
    assert not canary.exists()
    pickle.loads(evil)  # the payload is real
    assert canary.exists()


def test_a_function_reviewed_as_data_is_flagged_when_the_pickle_calls_it() -> None:
    # accuracy_score([1], [1]) at load time: harmless here, but no reviewed use calls it
    data = b"\x80\x04csklearn.metrics._classification\naccuracy_score\n(K\x01\x85K\x01\x85tR."
    assert [rule for rule, _ in _serious(data)] == ["pickle.global.unknown"]
    with pytest.raises(UnsafePickleError, match="kept as data"):
        _load(data)


def test_a_method_of_a_built_object_called_while_loading_is_critical() -> None:
    # getattr(re._compile("x", 0), "sub")("y", "x"): a bound method of a built object, called
    data = (b"\x80\x04cbuiltins\ngetattr\ncre\n_compile\nX\x01\x00\x00\x00xK\x00\x86R"
            b"X\x03\x00\x00\x00sub\x86R(X\x01\x00\x00\x00yX\x01\x00\x00\x00xtR.")
    assert ("pickle.getattr.unvetted",) in {(rule,) for rule, _ in _serious(data)}
    with pytest.raises(UnsafePickleError, match="kept as data"):
        _load(data)


def test_a_dunder_of_a_built_object_is_critical() -> None:
    data = (b"\x80\x04cbuiltins\ngetattr\ncre\n_compile\nX\x01\x00\x00\x00xK\x00\x86R"
            b"X\t\x00\x00\x00__class__\x86R.")
    assert [rule for rule, _ in _serious(data)] == ["pickle.getattr.unvetted"]
    with pytest.raises(UnsafePickleError, match="__class__"):
        _load(data)
