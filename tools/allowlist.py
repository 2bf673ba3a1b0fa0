"""Build the ecosystem allowlist: what libraries' own objects need when pickled, reviewed by rule.

Run in an environment holding the libraries to review (not Bastion's own: see bench/zoo)::

    python tools/allowlist.py review --observe bench/.work/zoo/dev \\
        --out src/bastion/scan/pickle/ecosystem.json

Candidates come from two places, neither of them a held-out file:

1. **reduce paths** of each configured library (``tools/allowlist.toml``): every class its
   modules define, every function its classes' ``__reduce__`` / ``__reduce_ex__`` return, every
   NumPy ufunc and every Cython ``__pyx_unpickle_*`` helper;
2. **observation**: the imports the scanner flags today in files the libraries saved
   (``--observe``: the development half of the zoo).

Each candidate is imported here (the reviewer's environment, never the scanner's input) and
judged by the written review rules (``RULES``; docs/scan.md has them in prose). Only what a rule
admits is emitted, each entry with the rule that admitted it and the library version it was
reviewed at; everything else is printed with the reason it was refused, for a person to read.
"""

from __future__ import annotations

import argparse
import ast
import enum
import importlib
import importlib.metadata
import inspect
import json
import pkgutil
import platform
import re
import sys
import textwrap
import tomllib
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, Final

CONFIG: Final = Path(__file__).with_name("allowlist.toml")
RULES_VERSION: Final = 1
RULES: Final = {
    "class.data": "a class whose construction and state-setting methods (__new__, __init__, "
    "__setstate__, __setattr__, __setitem__, append, extend, add, __hash__, __eq__, __del__, "
    "__call__) reach no file, network, process, import or code-execution call",
    "class.new-only": "a class admitted only to be rebuilt without its __init__ (NEWOBJ, "
    "copyreg.__newobj__ / _reconstructor, then its state): __init__ or __post_init__ reaches a "
    "sink, every other construction and state-setting method reaches none; a pickle that calls "
    "the class itself is flagged",
    "class.compiled": "a compiled (Cython/C) class of a reviewed library, outside any I/O module, "
    "whose name does not say it reads, writes, connects or runs",
    "class.enum": "an Enum: its members are constants",
    "function.ufunc": "a NumPy ufunc: elementwise arithmetic on its arguments",
    "function.reconstructor": "a function a reviewed class's __reduce__ returns, or a Cython "
    "__pyx_unpickle_* helper, whose body reaches no sink",
    "class.state-checked": "a class whose __setstate__ runs code only from a state field the "
    "scanner verifies (scipy.stats distributions exec their _parse_arg_template: "
    "pickle.state.code)",
    "function.compiled-reconstructor": "a compiled (Cython/C) function of a reviewed library "
    "named as a reconstructor (_unpickle..., _restore...), outside any I/O module",
    "function.data": "a function kept as data (a scorer, a loss, a callback): its body reaches "
    "no sink; a pickle may store it but is flagged if it calls it while loading",
    "object.constant": "a module-level object that is not callable (pandas.NA, a singleton), "
    "kept as data",
    "reviewed.by-hand": "read by a person, who wrote down why (tools/allowlist.toml, reviewed)",
}
# Modules no entry may come from, whatever they define: they read files, fetch, test or run.
_EXCLUDED_PARTS: Final = frozenset({
    "io", "_io", "parsers", "testing", "tests", "_testing", "conftest", "datasets", "hub",
    "cli", "__main__", "_datasource", "npyio", "_npyio_impl", "f2py", "distutils", "_pytesttester",
    "download", "downloads", "commands", "serve", "server", "remote", "_remote_module", "rpc",
    "multiprocessing", "launcher", "launch", "elastic", "compile", "_inductor", "_dynamo", "jit",
    "onnx", "package", "utils_io", "file_utils", "hub_utils",
})
_IO_WORDS: Final = frozenset({
    "file", "files", "stream", "reader", "writer", "store", "socket", "connection", "client",
    "server", "session", "download", "downloader", "upload", "loader", "saver", "logger",
    "handler", "thread", "process", "pool", "executor", "popen", "shell", "subprocess", "tempdir",
    "temporary", "lock", "database", "sql", "http", "url", "request", "remote", "importer",
    "plugin", "hook", "callback", "fs", "filesystem", "path", "dir", "directory", "cmd", "command",
})
"""Words in a class name that say it reads, writes, connects or runs (``CamelCase`` and
``snake_case`` split into words first, so ``Block`` is not ``lock``)."""
_WORD: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_METHODS: Final = (
    "__new__", "__init__", "__setstate__", "__setattr__", "__setitem__", "append", "extend",
    "add", "__hash__", "__eq__", "__del__", "__call__", "__post_init__",
)
_SINK_NAMES: Final = frozenset({
    "open", "exec", "eval", "compile", "__import__", "input", "breakpoint", "execfile",
})
_SINK_ATTRIBUTES: Final = frozenset({
    "system", "popen", "urlopen", "urlretrieve", "import_module", "load_module", "exec_module",
    "write_text", "write_bytes", "read_text", "read_bytes", "rmtree", "unlink", "makedirs",
    "mkdir", "hf_hub_download", "snapshot_download", "from_pretrained", "Popen", "check_output",
    "check_call", "spawn", "open", "connect", "fetch", "download",
    "cached_download", "load_state_dict_from_url", "run_path", "run_module",
})
_SINK_HEADS: Final = frozenset({
    "os", "subprocess", "shutil", "socket", "urllib", "requests", "httpx", "pickle", "marshal",
    "ctypes", "importlib", "tempfile", "dill", "cloudpickle", "joblib", "webbrowser", "runpy",
})
_SAFE_OS: Final = frozenset({"path", "fspath", "getenv", "environ", "cpu_count", "getpid", "sep"})
_LOADERS: Final = frozenset({"torch", "np", "numpy", "yaml", "jsonpickle", "h5py", "pd", "pandas"})
_RECONSTRUCTOR: Final = re.compile(
    r"unpickle|reconstruct|rebuild|restore|recreate|^_*(new_|from_state|make_|create_)"
)
_DEPTH: Final = 3
_INIT: Final = frozenset({"__init__", "__post_init__"})
"""Run when a pickle calls the class (REDUCE, OBJ, INST); not when it rebuilds an instance
with ``cls.__new__`` and sets its state (NEWOBJ, ``copyreg.__newobj__``/``_reconstructor``)."""
_GUARDED: Final = {"rv_generic._attach_argparser_methods": "scipy.parse-arg-template"}
"""Methods whose only sink the scanner checks in the pickle's state (``pickle.state.code``):
the sink walk stops there and the class is admitted as ``class.state-checked``."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the rules say about one ``module:name``."""

    entry: str
    rule: str | None
    """The rule that admits it, or None."""
    reason: str


@dataclass(frozen=True, slots=True)
class Library:
    """One reviewed library, from tools/allowlist.toml."""

    name: str
    """The distribution (its version is recorded)."""
    roots: tuple[str, ...]
    """Module prefixes whose classes and reduce paths are candidates."""
    exclude: tuple[str, ...] = ()
    """Module prefixes never reviewed (beyond the generic exclusions)."""
    distribution: str = ""
    """The distribution whose version is recorded, when not ``name`` (``xgboost-cpu``)."""
    names: tuple[str, ...] = ()
    """Further candidates by name (judged by the rules like the rest)."""
    reviewed: tuple[tuple[str, str], ...] = ()
    """Entries a person reviewed, with the reason (admitted as ``reviewed.by-hand``)."""


def libraries(config: Path = CONFIG) -> list[Library]:
    """The configured libraries."""
    data = tomllib.loads(config.read_text("utf-8"))
    return [
        Library(name, tuple(spec.get("roots", ())), tuple(spec.get("exclude", ())),
                spec.get("distribution", ""), tuple(spec.get("names", ())),
                tuple(spec.get("reviewed", {}).items()))
        for name, spec in data["library"].items()
    ]


# -- candidates ------------------------------------------------------------------------------
def walk(library: Library) -> Iterator[ModuleType]:
    """Every importable module under the library's roots, skipping excluded ones."""
    seen: set[str] = set()
    for root in library.roots:
        module = _import(root)
        if module is None:
            continue
        yield module
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), root + "."):
            if info.name in seen or _excluded(info.name, library):
                continue
            seen.add(info.name)
            sub = _import(info.name)
            if sub is not None:
                yield sub


def candidates(library: Library) -> set[str]:
    """``module:name`` of the library's classes, reduce-path functions, ufuncs and Cython
    unpickle helpers."""
    found: set[str] = set(library.names)
    for module in walk(library):
        for name, obj in list(vars(module).items()):
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                for cls in _with_nested(obj):  # Factor and Factor.EvalMethod (an Enum in it)
                    found.add(f"{module.__name__}:{cls.__qualname__}")
                    found.update(_reduce_targets(cls))
            elif (name.startswith("__pyx_unpickle_") or _is_ufunc(obj)
                  or _library_constant(module, name, obj)  # pandas.NA, pandas.NaT
                  or (callable(obj) and getattr(obj, "__module__", None) == module.__name__)):
                found.add(f"{module.__name__}:{name}")
    return {c for c in found if "<" not in c}


def _with_nested(cls: type, depth: int = 3) -> Iterator[type]:
    """``cls`` and the classes defined in its body (pickled by their dotted qualified name,
    ``formulaic``'s ``Factor.EvalMethod``), ``depth`` levels deep."""
    yield cls
    if depth:
        for attr, inner in list(vars(cls).items()):
            if (inspect.isclass(inner) and inner.__module__ == cls.__module__
                    and inner.__qualname__ == f"{cls.__qualname__}.{attr}"):
                yield from _with_nested(inner, depth - 1)


_REDUCE_TARGETS: set[str] = set()
"""Functions some reviewed class's ``__reduce__`` returns: called while loading, whatever
their name (filled by :func:`candidates`)."""


def _library_constant(module: ModuleType, name: str, obj: object) -> bool:
    """A public module-level instance of one of the library's own types."""
    top = module.__name__.split(".")[0]
    return (not name.startswith("_") and not callable(obj) and not isinstance(obj, ModuleType)
            and type(obj).__module__.split(".")[0] == top)


def _reduce_targets(cls: type) -> Iterator[str]:
    """Functions a class's own ``__reduce__`` / ``__reduce_ex__`` return (by name)."""
    for method in ("__reduce__", "__reduce_ex__"):
        func = cls.__dict__.get(method)
        tree = _tree(func)
        if tree is None or not isinstance(func, FunctionType):
            continue
        for node in ast.walk(tree):
            value = node.value if isinstance(node, ast.Return) else None
            if isinstance(value, ast.Tuple) and value.elts:
                head = value.elts[0]
                if isinstance(head, ast.Name):
                    target = func.__globals__.get(head.id)
                    if isinstance(target, FunctionType):
                        entry = f"{target.__module__}:{target.__qualname__}"
                        _REDUCE_TARGETS.add(entry)
                        yield entry


def observed(directories: Iterable[Path]) -> set[str]:
    """Imports the scanner flags today in files under ``directories``."""
    from bastion.scan import scan
    from bastion.scan.pickle import Policy

    report = scan(*directories, policy=Policy.curated())
    return {
        f"{f.evidence['module']}:{f.evidence['name']}"
        for f in report.findings
        if f.rule.startswith("pickle.global.") and "module" in f.evidence
    }


# -- the rules ---------------------------------------------------------------------------------
def review(entry: str, library: Library | None = None) -> Decision:
    """Judge ``module:name`` by the rules; import it (this is the reviewer's environment)."""
    from bastion.scan.pickle import Policy

    module_name, _, name = entry.partition(":")
    verdict = Policy.curated().verdict(module_name, name)
    if verdict.allowed:
        return Decision(entry, None, "already on the curated list")
    if verdict.severity.value == "critical" and not _nested_class(module_name, name):
        return Decision(entry, None, f"denylisted: {verdict.reason}")
    if any(part.startswith("__") and part.endswith("__") for part in name.split(".")):
        return Decision(entry, None, "a dunder name")
    if _excluded(module_name, library):
        return Decision(entry, None, "its module reads, writes, fetches, tests or runs code")
    obj = _resolve(module_name, name)
    if obj is None:
        return Decision(entry, None, "does not import here")
    if inspect.isclass(obj):
        return _review_class(entry, obj)
    if _is_ufunc(obj):
        return Decision(entry, "function.ufunc", RULES["function.ufunc"])
    if callable(obj):
        return _review_function(entry, obj)
    return _review_object(entry, obj)


def _nested_class(module_name: str, name: str) -> bool:
    """``name`` is dotted only because it is a class defined in another class's body
    (``Factor.EvalMethod``): its own qualified name, not a walk to an object elsewhere. Only
    the dotted-name rule is waived; the module's and the name's denylists still apply."""
    if "." not in name or any(p.startswith("_") for p in name.split(".")):
        return False
    from bastion.scan.pickle import Policy

    outer = Policy.curated().verdict(module_name, name.split(".", 1)[0])
    if outer.severity.value == "critical":
        return False
    obj = _resolve(module_name, name)
    return (inspect.isclass(obj) and getattr(obj, "__module__", None) == module_name
            and getattr(obj, "__qualname__", None) == name)


def _review_class(entry: str, cls: type) -> Decision:
    if issubclass(cls, BaseException):
        return Decision(entry, None, "an exception class: nothing a model needs")
    if issubclass(cls, enum.Enum):
        return Decision(entry, "class.enum", RULES["class.enum"])
    sources, guards, init_sink = 0, set[str](), ""
    for method in _METHODS:
        func = getattr(cls, method, None)
        if func is None or _builtin(func):
            continue
        sources += 1
        sink = _sink(func, cls, _DEPTH, guards)
        if sink and method in _INIT and not init_sink:
            init_sink = f"{method} reaches {sink}"
        elif sink:
            return Decision(entry, None, f"{method} reaches {sink}")
    if init_sink:
        return Decision(entry, "class.new-only", f"{RULES['class.new-only']} ({init_sink})")
    if guards:
        return Decision(entry, "class.state-checked", RULES["class.state-checked"])
    if sources == 0 and not _has_python_source(cls):  # no code to read: its name must do
        return _compiled(entry, cls.__name__, "class.compiled")
    return Decision(entry, "class.data", RULES["class.data"])


def _review_function(entry: str, func: Callable[..., object]) -> Decision:
    name = entry.partition(":")[2].rpartition(".")[2]
    compiled = _tree(func) is None
    if _RECONSTRUCTOR.search(name) or entry in _REDUCE_TARGETS:
        if name.startswith("__pyx_unpickle_"):
            return Decision(entry, "function.reconstructor", RULES["function.reconstructor"])
        if compiled:
            return _compiled(entry, name, "function.compiled-reconstructor")
        sink = _sink(func, None, _DEPTH)
        if sink:
            return Decision(entry, None, f"reaches {sink}")
        return Decision(entry, "function.reconstructor", RULES["function.reconstructor"])
    if compiled:
        return _compiled(entry, name, "function.data")
    sink = _sink(func, None, _DEPTH)
    if sink:
        return Decision(entry, None, f"reaches {sink}")
    return Decision(entry, "function.data", RULES["function.data"])


def _compiled(entry: str, name: str, rule: str) -> Decision:
    if _io_words(name):
        return Decision(entry, None, f"its name ({name}) says it does I/O or runs code")
    return Decision(entry, rule, RULES[rule])


def _review_object(entry: str, obj: object) -> Decision:
    kind = type(obj)
    if isinstance(obj, ModuleType):
        return Decision(entry, None, "a module: review by hand")
    if _io_words(kind.__name__) or _io_words(entry.rpartition(":")[2]):
        return Decision(entry, None, f"its type ({kind.__name__}) says it does I/O")
    return Decision(entry, "object.constant", RULES["object.constant"])


def _io_words(name: str) -> bool:
    return bool(_IO_WORDS.intersection(w.lower() for w in _WORD.findall(name)))


_SINKS: dict[tuple[int, int, int], tuple[object, str | None, frozenset[str]]] = {}
"""Memo of :func:`_sink` (a library's functions call the same helpers over and over)."""


def _sink(func: object, cls: type | None, depth: int,
          guards: set[str] | None = None) -> str | None:
    """The first sink call ``func``'s body (or what it calls, ``depth`` deep) reaches; the
    :data:`_GUARDED` methods it reaches are added to ``guards``, not walked."""
    key = (id(func), id(cls), depth)
    if key not in _SINKS:
        found: set[str] = set()
        _SINKS[key] = (func, _walk_sink(func, cls, depth, found), frozenset(found))
    _, sink, reached = _SINKS[key]
    if guards is not None:
        guards.update(reached)
    return sink


def _walk_sink(func: object, cls: type | None, depth: int, guards: set[str]) -> str | None:
    tree = _tree(func)
    if tree is None:
        return None
    namespace = getattr(func, "__globals__", {})
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        dotted = _dotted(node.func)
        if dotted is None:
            continue
        if _is_sink(dotted):
            return dotted
        if depth <= 0:
            continue
        head, _, rest = dotted.partition(".")
        callee: object = None
        if head == "self" and cls is not None and rest and "." not in rest:
            callee = getattr(cls, rest, None)
        elif not rest:
            callee = namespace.get(head)
        if isinstance(callee, FunctionType) and callee.__qualname__ in _GUARDED:
            guards.add(_GUARDED[callee.__qualname__])
            continue
        if isinstance(callee, FunctionType):
            inner = _sink(callee, cls, depth - 1, guards)
            if inner:
                return f"{dotted} -> {inner}"
    return None


def _is_sink(dotted: str) -> bool:
    parts = dotted.split(".")
    head, last = parts[0], parts[-1]
    if len(parts) == 1:
        return head in _SINK_NAMES
    if head == "os":
        return parts[1] not in _SAFE_OS
    if head == "platform":  # platform.system() names the OS; nothing runs
        return False
    if head in _SINK_HEADS:
        return True
    if last in ("load", "loads", "fromfile", "load_model", "read_pickle") and head in _LOADERS:
        return True
    return last in _SINK_ATTRIBUTES


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    if isinstance(node, ast.Call) and parts:  # super().__init__(...), Path(p).read_text()
        return "_." + ".".join(reversed(parts))
    return None


# -- helpers ------------------------------------------------------------------------------------
def _import(name: str) -> ModuleType | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except BaseException:
        return None


def _resolve(module_name: str, name: str) -> object:
    module = _import(module_name)
    obj: object = module
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _excluded(module_name: str, library: Library | None) -> bool:
    parts = module_name.split(".")
    if any(p in _EXCLUDED_PARTS for p in parts[1:]):
        return True
    return library is not None and any(
        module_name == e or module_name.startswith(e + ".") for e in library.exclude
    )


def _is_ufunc(obj: object) -> bool:
    return type(obj).__name__ == "ufunc" and type(obj).__module__ == "numpy"


def _builtin(func: object) -> bool:
    """A slot or method inherited from ``object`` / a builtin type (no Python to review)."""
    return not isinstance(func, FunctionType | staticmethod | classmethod) and not hasattr(
        func, "__func__"
    )


def _has_python_source(cls: type) -> bool:
    try:
        inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return False
    return True


_TREES: dict[int, tuple[object, ast.AST | None]] = {}


def _tree(func: object) -> ast.AST | None:
    """The parsed source of ``func`` (memoised), or None when it has none."""
    func = getattr(func, "__func__", func)
    if id(func) not in _TREES:
        _TREES[id(func)] = (func, _parse(func))
    return _TREES[id(func)][1]


def _parse(func: object) -> ast.AST | None:
    try:
        source = inspect.getsource(func)  # type: ignore[arg-type]
    except (TypeError, OSError):
        return None
    try:
        return ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None


def _version(library: Library | None, name: str) -> str:
    if name == "python-stdlib":
        return platform.python_version()
    try:
        return importlib.metadata.version(library.distribution if library and
                                          library.distribution else name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _owner(entry: str, libs: list[Library]) -> Library | None:
    module = entry.partition(":")[0]
    for lib in libs:
        if any(module == r or module.startswith(r + ".") for r in lib.roots):
            return lib
    return None


# -- the command --------------------------------------------------------------------------------
def build(observe: list[Path], only: set[str] | None = None) -> tuple[dict[str, Any],
                                                                      list[Decision]]:
    """The ecosystem allowlist document and the refused candidates."""
    libs = [lib for lib in libraries() if only is None or lib.name in only]
    pool: dict[str, Library | None] = {}
    for lib in libs:
        for entry in candidates(lib):
            pool[entry] = lib
    for entry in observed(observe) if observe else ():
        pool.setdefault(entry, _owner(entry, libs))
    admitted: dict[str, dict[str, str]] = {}
    notes: dict[str, dict[str, str]] = {}
    for lib in libs:
        for entry, reason in lib.reviewed:
            pool.pop(entry, None)
            admitted.setdefault(lib.name, {})[entry] = "reviewed.by-hand"
            notes.setdefault(lib.name, {})[entry] = reason
    refused: list[Decision] = []
    for entry in sorted(pool):
        lib = pool[entry]
        decision = review(entry, lib)
        if decision.rule is None:
            if decision.reason != "already on the curated list":
                refused.append(decision)
            continue
        owner = lib.name if lib else entry.partition(":")[0].split(".")[0]
        admitted.setdefault(owner, {})[entry] = decision.rule
    by_name = {lib.name: lib for lib in libs}
    document = {
        "about": "Generated by tools/allowlist.py from tools/allowlist.toml and the development "
        "half of bench/zoo; do not edit by hand. Each entry names the review rule that admitted "
        "it (see rules); docs/scan.md describes the process.",
        "rules_version": RULES_VERSION,
        "rules": RULES,
        "libraries": {
            name: {"versions": [version := _version(by_name.get(name), name)],
                   "entries": {e: {"rule": r, "versions": [version]}
                               for e, r in sorted(entries.items())},
                   **({"notes": notes[name]} if name in notes else {})}
            for name, entries in sorted(admitted.items())
        },
    }
    return document, refused


def merge(document: dict[str, Any], earlier: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``earlier``'s reviews of versions not reviewed now (one library
    reviewed at several versions: pandas 2 in one environment, pandas 3 in another). Each
    entry keeps the versions it was admitted at."""
    libs = document["libraries"]
    for name, old in earlier.get("libraries", {}).items():
        new = libs.setdefault(name, {"versions": [], "entries": {}})
        kept = [v for v in old["versions"] if v not in new["versions"]]
        if not kept:
            continue  # reviewed again now: the new review replaces the old
        new["versions"] = sorted(set(new["versions"]) | set(kept))
        entries = new["entries"]
        for entry, spec in old["entries"].items():
            versions = [v for v in spec["versions"] if v in kept]
            if not versions:
                continue
            mine = entries.setdefault(entry, {"rule": spec["rule"], "versions": []})
            mine["versions"] = sorted(set(mine["versions"]) | set(versions))
        new["entries"] = dict(sorted(entries.items()))
        if "notes" in old:
            new["notes"] = {**old["notes"], **new.get("notes", {})}
    document["libraries"] = dict(sorted(libs.items()))
    return document


def compact(document: dict[str, Any]) -> dict[str, Any]:
    """The file's form: per library, entries listed under their rule; ``at`` names the
    versions of the entries not admitted at every reviewed version."""
    libs: dict[str, Any] = {}
    for name, lib in document["libraries"].items():
        rules: dict[str, list[str]] = {}
        at: dict[str, list[str]] = {}
        for entry, spec in lib["entries"].items():
            rules.setdefault(spec["rule"], []).append(entry)
            if sorted(spec["versions"]) != sorted(lib["versions"]):
                at[entry] = sorted(spec["versions"])
        libs[name] = {"versions": lib["versions"],
                      "rules": {r: sorted(e) for r, e in sorted(rules.items())},
                      **({"at": at} if at else {}),
                      **({"notes": lib["notes"]} if lib.get("notes") else {})}
    return {**document, "libraries": libs}


def expand(document: dict[str, Any]) -> dict[str, Any]:
    """The tool's working form (entry -> rule and versions) of a file :func:`compact` wrote."""
    libs: dict[str, Any] = {}
    for name, lib in document["libraries"].items():
        at = lib.get("at", {})
        libs[name] = {"versions": lib["versions"], "entries": {
            e: {"rule": r, "versions": at.get(e, lib["versions"])}
            for r, entries in lib["rules"].items() for e in entries}}
        if "notes" in lib:
            libs[name]["notes"] = lib["notes"]
    return {**document, "libraries": libs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("review", help="review candidates and write the ecosystem allowlist")
    run.add_argument("--observe", type=Path, action="append", default=[],
                     help="a directory of files the libraries saved (repeatable)")
    run.add_argument("--only", action="append", help="review only this library (repeatable)")
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--merge", action="store_true",
                     help="keep --out's entries for library versions not installed here")
    run.add_argument("--refused", type=Path, help="also write the refused candidates (JSON)")
    args = parser.parse_args(argv)
    document, refused = build(args.observe, set(args.only) if args.only else None)
    if args.merge and args.out.exists():
        document = merge(document, expand(json.loads(args.out.read_text("utf-8"))))
    args.out.write_text(json.dumps(compact(document), indent=0) + "\n", "utf-8")
    total = sum(len(lib["entries"]) for lib in document["libraries"].values())
    print(f"{total} entries admitted, {len(refused)} refused -> {args.out}")
    if args.refused:
        args.refused.write_text(json.dumps(
            [{"entry": d.entry, "reason": d.reason} for d in refused], indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
