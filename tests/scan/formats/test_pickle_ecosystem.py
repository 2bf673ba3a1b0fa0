"""What real libraries pickle scans clean and loads under the same policy; each class of object
the benign zoo found has a sample here, beside a malicious look-alike that must not pass.

Fixtures are built by the libraries themselves (pandas, SciPy, NumPy, scikit-learn, re).
"""

from __future__ import annotations

import functools
import io
import logging
import operator
import pickle
import random
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
from bastion.scan import Policy, ScanLimits, scan
from bastion.scan.formats.pickle import PickleScanner
from bastion.scan.interface import Source
from bastion.scan.pickle import RestrictedUnpickler, UnsafePickleError


def _serious(data: bytes, policy: Policy | None = None) -> list[tuple[str, str]]:
    source = Source(Location("x.pkl"), len(data), lambda: io.BytesIO(data))
    scanner = PickleScanner(policy or Policy.default())
    return sorted({(f.rule, f.title) for f in scanner.scan(source, ScanLimits())
                   if isinstance(f, Finding) and f.severity >= Severity.HIGH})


def _load(data: bytes, policy: Policy | None = None) -> object:
    return RestrictedUnpickler(io.BytesIO(data), policy=policy).load()


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
    "stdlib callables built from constants": (
        lambda: [operator.itemgetter(0, 2), operator.attrgetter("real", "imag.real"),
                 operator.methodcaller("split", ","), type(None), logging.getLogger("zoo.x"),
                 {"keys": {operator.itemgetter(1)}}],
        lambda a, b: repr(a) == repr(b)),
    "a BytesIO buffer": (lambda: io.BytesIO(b"\x00abc"),
                         lambda a, b: a.getvalue() == b.getvalue()),  # type: ignore[attr-defined]
    "a partial of a built object's method": (
        lambda: functools.partial(random.Random(0).gauss, 0.0),
        lambda a, b: a.func(1.0) == b.func(1.0)),  # type: ignore[attr-defined]
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


# -- stdlib callables built from constants (rule 10) and what calls its argument (rule 11) -----
def _op(op: bytes, text: str) -> bytes:
    raw = text.encode()
    return op + struct.pack("<I", len(raw)) + raw


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def _text(s: str) -> bytes:
    return _op(b"X", s)


@pytest.mark.parametrize(("what", "data", "refusal"), [
    ("an attribute path through a dunder",
     _call(_global("operator", "attrgetter"), _text("__init__.__globals__")), "constant"),
    ("a private method by name",
     _call(_global("operator", "methodcaller"), _text("_save"), _text("/tmp/x")), "constant"),
    ("three-argument type(): a new class",
     _call(_global("builtins", "type"), _text("X"), b")", b"}"), "constant"),
    ("type() of an imported function",
     _call(_global("builtins", "type"), _global("builtins", "len")), "constant"),
    ("a logger that BUILD rewrites",
     _call(_global("logging", "getLogger"), _text("app")) + b"}" + _text("disabled")
     + b"\x88sb", "BUILD"),
    ("a BytesIO whose state sets attributes",
     _global("_io", "BytesIO") + b")\x81" + b"(" + _op(b"B", "x") + b"K\x00}" + _text("read")
     + _global("builtins", "len") + b"stb", "BUILD"),
    ("an item getter handed to a call",
     _call(_global("collections", "defaultdict"),
           _call(_global("operator", "itemgetter"), b"K\x00")), "data"),
])
def test_stdlib_callables_only_build_data_from_constants(what: str, data: bytes,
                                                         refusal: str) -> None:
    data = b"\x80\x02" + data + b"."
    assert _serious(data), what
    with pytest.raises(UnsafePickleError, match=refusal):
        _load(data)


def test_a_value_built_from_constants_is_never_called() -> None:
    # methodcaller("system", "id")(os_like): calling what attrgetter/methodcaller built
    data = b"\x80\x02" + _call(_call(_global("operator", "methodcaller"), _text("upper")),
                                 _text("x")) + b"."
    assert ("pickle.call.indeterminate" in {rule for rule, _ in _serious(data)})
    with pytest.raises(UnsafePickleError, match="kept as data"):
        _load(data)


@pytest.mark.parametrize("func", [
    _call(_global("operator", "methodcaller"), _text("upper")),  # a value built from constants
    _call(_global("builtins", "getattr"), _call(_global("re", "_compile"), _text("x"), b"K\x00"),
          _text("sub")),  # a bound method of a built object, kept as data
    _global("sklearn.metrics._classification", "accuracy_score"),  # a function kept as data
])
def test_what_an_allowed_reconstructor_calls_is_judged_as_called(func: bytes) -> None:
    """torch._tensor._rebuild_from_type_v2(func, type, args, state) runs func(*args): a value
    kept as data must not be run through it."""
    data = (b"\x80\x02" + _call(_global("torch._tensor", "_rebuild_from_type_v2"), func,
                                  _global("torch", "Tensor"), b"(" + _text("x") + b"t}")
            + b".")
    found = {rule for rule, _ in _serious(data)}
    assert found & {"pickle.call.indirect", "pickle.global.dangerous"}, found
    assert "pickle.call.indirect" in found
    with pytest.raises(UnsafePickleError):
        _load(data)


class _Emulated:
    """Pickles under protocol 2 as partial(_Emulated.__new__, _Emulated, x=...)(): how
    ``pickle.py`` writes NEWOBJ_EX before protocol 4 (sympy's Symbol pickles so)."""

    def __new__(cls, *, x: int = 0) -> _Emulated:
        self = super().__new__(cls)
        self.x = x
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[object, ...], dict[str, object]]:
        return (), {"x": self.x}


_OWN = Policy.default().allowing([f"{__name__}._Emulated"])


def test_protocol_2s_newobj_ex_emulation_scans_clean_and_loads() -> None:
    data = pickle.dumps(_Emulated(x=3), protocol=2)
    assert b"partial" in data
    assert _serious(data, _OWN) == []
    assert _load(data, _OWN).x == 3  # type: ignore[attr-defined]


def test_a_new_partial_bound_to_another_class_is_refused() -> None:
    # partial(_Emulated.__new__, OrderedDict)(): __new__ of one class given another
    owner = _global(__name__, "_Emulated")
    new = _call(_global("builtins", "getattr"), owner, _text("__new__"))
    partial = _call(_global("functools", "partial"), new)
    state = b"(" + new + b"(" + _global("collections", "OrderedDict") + b"t}Ntb"
    crafted = b"\x80\x02" + partial + state + b")R."
    assert _serious(crafted, _OWN)
    with pytest.raises(UnsafePickleError):
        _load(crafted, _OWN)


# -- Keras Model._unpickle_model: the archive inside is scanned as the archive it is (rule 9) ---
def _keras_pickle(archive: bytes) -> bytes:
    return (b"\x80\x04" + _global("builtins", "getattr")
            + _global("keras.src.models.functional", "Functional") + _text("_unpickle_model")
            + b"\x86R" + _global("_io", "BytesIO") + b")\x81"
            + b"B" + struct.pack("<I", len(archive)) + archive
            + b"J" + struct.pack("<i", len(archive)) + b"N\x87b\x85R.")


@pytest.fixture(scope="module")
def keras_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    from tests.scan.corpus_formats import keras_benign, keras_lambda

    root = tmp_path_factory.mktemp("keras-in-pickle")
    out = {}
    for name, build in [("benign", keras_benign), ("lambda", keras_lambda)]:
        build(root / f"{name}.keras", root / "CANARY")
        out[name] = (root / f"{name}.keras").read_bytes()
    return out


def test_a_keras_model_pickle_is_scanned_through_its_archive(
        keras_archives: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(_keras_pickle(keras_archives["benign"]))
    report = scan(path)
    assert [f.rule for f in report.findings if f.severity >= Severity.HIGH] == []
    assert any("keras archive" in (f.location.member or "") for f in report.files)  # type: ignore[attr-defined]


def test_a_lambda_in_a_pickled_keras_model_is_critical(
        keras_archives: dict[str, bytes], tmp_path: Path) -> None:
    """_unpickle_model loads with safe_mode=False: a Lambda layer's bytecode runs."""
    path = tmp_path / "model.pkl"
    path.write_bytes(_keras_pickle(keras_archives["lambda"]))
    found = [f for f in scan(path).findings if f.severity is Severity.CRITICAL]
    assert [f.rule for f in found] == ["keras.lambda.bytecode"]
    assert "keras archive" in (found[0].location.member or "")


def test_a_keras_archive_that_is_not_constant_bytes_stays_a_finding() -> None:
    # _unpickle_model(BytesIO()) with the buffer filled by nothing the scanner can read
    data = (b"\x80\x04" + _global("builtins", "getattr")
            + _global("keras.src.models.functional", "Functional") + _text("_unpickle_model")
            + b"\x86R" + _global("_io", "BytesIO") + b")\x81\x85R.")
    assert "pickle.getattr.unvetted" in {rule for rule, _ in _serious(data)}


# -- a class factory's result, called (sympy's undefined functions) --------------------------
def _undefined_function(assumptions: bytes) -> bytes:
    """``_rebuild_undef("f", {...})(t)`` by NEWOBJ, as sympy pickles ``Function("f")(t)``."""
    factory = _call(_global("sympy.core.function", "_rebuild_undef"), _text("f"),
                    b"}" + assumptions)
    return b"\x80\x02" + factory + b"(" + _text("t") + b"t\x81."


def test_a_sympy_undefined_function_with_assumptions_scans_clean() -> None:
    assert _serious(_undefined_function(b"(" + _text("real") + b"\x88u")) == []


def test_a_sympy_undefined_function_given_a_class_attribute_is_critical() -> None:
    """Its keyword arguments become class attributes: eval=<callable> would run on the call."""
    evil = _undefined_function(b"(" + _text("eval") + _global("builtins", "len") + b"u")
    assert "pickle.call.indeterminate" in {rule for rule, _ in _serious(evil)}


def test_numba_compiled_code_is_flagged_and_the_finding_says_why() -> None:
    data = b"\x80\x02" + _call(_global("numba.core.serialize", "_unpickle__CustomPickled"),
                                 _op(b"B", "code")) + b"."
    source = Source(Location("x.pkl"), len(data), lambda: io.BytesIO(data))
    found = [f for f in PickleScanner().scan(source, ScanLimits())
             if isinstance(f, Finding) and f.severity >= Severity.HIGH]
    assert found and "compiled function's Python code" in found[0].detail
    assert "numba.core.serialize" in found[0].remediation
