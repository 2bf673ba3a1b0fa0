"""The globals policy: which imports a pickle may make. An allowlist, never a denylist.

One :class:`Policy` drives both the scanner and :class:`~bastion.scan.pickle.RestrictedUnpickler`,
so what scans clean is exactly what loads::

    >>> from bastion.scan.pickle.policy import Policy
    >>> policy = Policy.default()
    >>> policy.verdict("collections", "OrderedDict").allowed
    True
    >>> policy.verdict("__builtin__", "eval", proto=2).severity.value
    'critical'

Why an allowlist (picklescan and modelscan advisories, 2023-2025): every published bypass of a
denylist scanner was a callable nobody had listed (``pydoc.locate``, ``torch.load`` nested,
``operator.attrgetter``, ``pip.main``, ``_io.FileIO``, ``numpy.load``…). Here anything not known
safe is a finding; the denylist below only decides *how* bad (critical vs high).

Names are canonicalised as the unpickler would: protocol < 3 applies ``_compat_pickle`` renames
(``__builtin__.eval`` *is* ``builtins.eval``); a dotted name walks attributes (protocol ≥ 4),
so ``collections`` + ``OrderedDict.__init__.__globals__`` is neither ``OrderedDict`` nor allowed.
"""

from __future__ import annotations

import _compat_pickle
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol, Self, runtime_checkable

from bastion.findings import Severity
from bastion.scan.interface import FormatScanner, ScanError

__all__ = [
    "CALLS_ARGUMENT",
    "CLASS_FACTORIES",
    "CONSTANT_CALLS",
    "GETATTR",
    "TORCHSCRIPT_MODULES",
    "TORCHSCRIPT_NAMES",
    "Policy",
    "PolicyAware",
    "Verdict",
    "canonical",
    "class_factory",
    "constant_call",
]

_ALLOWLIST: Final = Path(__file__).with_name("allowlist.json")
_ECOSYSTEM: Final = Path(__file__).with_name("ecosystem.json")
_CRITICAL_MODULES: Final = frozenset({
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "socket", "_socket", "shutil",
    "pty", "importlib", "runpy", "code", "codeop", "ctypes", "_ctypes", "pickle", "_pickle",
    "cPickle", "dill", "cloudpickle", "marshal", "webbrowser", "urllib", "urllib2", "http",
    "httplib", "ftplib", "smtplib", "telnetlib", "poplib", "imaplib", "requests", "httpx",
    "aiohttp", "asyncio", "multiprocessing", "threading", "_thread", "signal", "tempfile", "io",
    "_io", "glob", "commands", "pdb", "bdb", "timeit", "trace", "profile", "cProfile", "pydoc",
    "ensurepip", "pip", "setuptools", "distutils", "venv", "zipimport", "imp", "types",
    "functools", "operator", "builtins", "__builtin__", "sqlite3", "shelve", "dbm", "tarfile",
    "zipfile", "inspect", "gc", "site", "sysconfig", "platform", "uuid", "linecache", "fileinput",
    "ssl", "select", "selectors", "mmap", "resource", "fcntl", "termios", "pwd", "grp", "jinja2",
    "yaml", "joblib", "paramiko", "fabric", "pexpect", "sh", "plumbum", "git", "xmlrpc",
    "socketserver", "logging", "atexit", "exec", "copyreg", "pkgutil", "compileall",
    "py_compile", "unittest", "doctest", "idlelib", "tkinter", "turtle", "antigravity", "this",
})
"""Modules whose callables run code, touch files or the network (any name in them)."""

_CRITICAL_NAMES: Final = frozenset({
    ("torch", "load"), ("torch", "hub"), ("torch.hub", "load"), ("torch.jit", "load"),
    ("torch.serialization", "load"), ("torch.storage", "_load_from_bytes"),
    ("torch._inductor.codecache", "compile_file"), ("torch.utils.cpp_extension", "load"),
    ("torch.utils.cpp_extension", "load_inline"), ("torch.package", "PackageImporter"),
    ("torch._dynamo", "eval_frame"), ("torch.fx.experimental.symbolic_shapes", "eval"),
    ("numpy", "load"), ("numpy", "loadtxt"), ("numpy", "fromfile"), ("numpy", "genfromtxt"),
    ("numpy.lib.npyio", "load"), ("numpy", "memmap"), ("numpy.f2py", "compile"),
    ("numpy.testing._private.utils", "runstring"), ("numpy.distutils.exec_command", "exec_command"),
    ("pandas", "read_pickle"), ("pandas", "read_csv"), ("pandas.io.pickle", "read_pickle"),
    ("keras.models", "load_model"), ("tensorflow", "py_function"), ("scipy.io", "loadmat"),
    ("sklearn.datasets", "fetch_openml"), ("onnx", "load"), ("h5py", "File"),
})
"""Individual callables outside those modules that load, fetch or execute."""

def canonical(module: str, name: str, proto: int) -> tuple[str, str]:
    """The (module, name) ``find_class`` would really import, after protocol 0-2 renames."""
    if proto < 3:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
    return module, name


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the policy says about one import."""

    module: str
    """Canonical module (after protocol renames)."""
    name: str
    """Canonical name; dotted names walk attributes."""
    allowed: bool
    """On the allowlist (built in or extended by the user)."""
    severity: Severity
    """``INFO`` when allowed; ``CRITICAL`` for known code/file/network primitives; else ``HIGH``."""
    reason: str
    """Why, for people."""

    @property
    def qualified(self) -> str:
        """``module.name`` as the unpickler would resolve it."""
        return f"{self.module}.{self.name}"


@dataclass(frozen=True, slots=True)
class Policy:
    """An allowlist of ``module:name`` entries, plus ``module:*`` entries for whole modules.

    Build with :meth:`default`, then extend with :meth:`allowing` or :meth:`with_file`.
    """

    allowed: frozenset[str]
    """``module:name`` entries."""
    allowed_modules: frozenset[str] = field(default_factory=frozenset)
    """Modules the user allowed wholesale (``module.*``)."""
    data: frozenset[str] = field(default_factory=frozenset)
    """``module:name`` entries reviewed to be kept as data only (:meth:`data_only`)."""
    ecosystem: bool = False
    """Also admit the reviewed ecosystem entries (``ecosystem.json``), each as its rule says.
    Read on the first name the other sets do not hold: most checkpoints never need it."""

    @classmethod
    def default(cls) -> Self:
        """The built-in allowlist: :meth:`curated` and the reviewed ecosystem entries
        (``ecosystem.json``, generated by ``tools/allowlist.py``; see docs/scan.md)."""
        return cls(_builtin_allowlist(), TORCHSCRIPT_MODULES, _builtin_data(), ecosystem=True)

    def _rule(self, entry: str) -> str | None:
        """The ecosystem rule that admitted ``entry``, when this policy uses the ecosystem."""
        return _ecosystem().get(entry) if self.ecosystem else None

    def admits(self, entry: str) -> bool:
        """``module:name`` may be imported and called while loading."""
        if entry in self.allowed:
            return True
        rule = self._rule(entry)
        return rule is not None and rule not in DATA_RULES | REBUILD_RULES

    @classmethod
    def curated(cls) -> Self:
        """The hand-curated allowlist (``allowlist.json`` next to this module), and the names
        only TorchScript resolves (:data:`TORCHSCRIPT_MODULES`, :data:`TORCHSCRIPT_NAMES`)."""
        return cls(_builtin_allowlist(), TORCHSCRIPT_MODULES, _builtin_data())

    def allowing(self, names: Iterable[str]) -> Self:
        """A copy that also allows ``names`` (``module.name``, ``module:name`` or ``module.*``)."""
        allowed, modules = set(self.allowed), set(self.allowed_modules)
        for raw in names:
            entry = raw.strip()
            module, sep, name = entry.partition(":")
            if not sep:
                module, _, name = entry.rpartition(".")
            if not module or not name or not all(p.isidentifier() for p in module.split(".")):
                raise ScanError(
                    f"cannot read the allowlist entry {raw!r}",
                    hint="write module.name (torch.nn.Linear), module:name or module.*",
                )
            if name == "*":
                modules.add(module)
            else:
                allowed.add(f"{module}:{name}")
        return type(self)(frozenset(allowed), frozenset(modules), self.data, self.ecosystem)

    def with_file(self, path: Path) -> Self:
        """A copy extended by a policy file: TOML with ``allow = ["module.name", ...]``."""
        import tomllib

        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except OSError as exc:
            raise ScanError(f"cannot read the policy file {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ScanError(
                f"the policy file {path} is not valid TOML: {exc}",
                hint='write e.g.  allow = ["mypkg.models.MyNet"]',
            ) from None
        allow = data.get("allow", [])
        unknown = set(data) - {"allow"}
        if unknown or not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise ScanError(
                f"the policy file {path} must hold only  allow = [\"module.name\", ...]",
                hint=f"unexpected: {sorted(unknown) or 'allow is not a list of strings'}",
            )
        return self.allowing(allow)

    def verdict(self, module: str, name: str, proto: int = 4) -> Verdict:
        """Judge one import as ``find_class(module, name)`` under protocol ``proto``."""
        module, name = canonical(module, name, proto)
        dunder = name.startswith("__") and name.endswith("__")
        if self.admits(f"{module}:{name}") or (  # a module allowed whole: never its dunders
            "." not in name and not dunder and _in_modules(module, self.allowed_modules)
        ):
            return Verdict(module, name, True, Severity.INFO, "on the allowlist")
        top = module.split(".", 1)[0]
        if top in _CRITICAL_MODULES or (module, name.split(".", 1)[0]) in _CRITICAL_NAMES:
            return Verdict(module, name, False, Severity.CRITICAL,
                           "runs code, touches files or the network when called")
        if "." in name:
            return Verdict(module, name, False, Severity.CRITICAL,
                           "a dotted name walks attributes to an object nobody vetted")
        if dunder:  # numpy.__builtins__ (modelscan#330)
            return Verdict(module, name, False, Severity.CRITICAL,
                           "a dunder attribute reaches interpreter internals")
        return Verdict(module, name, False, Severity.HIGH,
                       "not on the allowlist: importing and calling it runs unvetted code")


    def attribute(self, module: str, name: str, attribute: str, proto: int = 4, *,
                  called: bool) -> Verdict:
        """Judge ``getattr(module.name, attribute)``, the way pickles reach a bound method
        (``ZoneInfo._unpickle``) or an Enum member: as the dotted name it reaches.

        Called, the attribute must itself be on the allowlist (``zoneinfo:ZoneInfo._unpickle``).
        Only read (an Enum member), a public attribute of an allowed object is data.
        """
        module, name = canonical(module, name, proto)
        dotted = f"{name}.{attribute}"
        if self.admits(f"{module}:{dotted}"):
            return Verdict(module, dotted, True, Severity.INFO, "on the allowlist")
        if (attribute.startswith("__") and attribute.endswith("__")) or not (
                attribute.isidentifier()):
            return Verdict(module, dotted, False, Severity.CRITICAL,
                           "an attribute walk reaches interpreter internals")
        if called:
            return Verdict(module, dotted, False, Severity.CRITICAL,
                           "reaches a method nobody vetted, and the pickle calls it")
        base = self.verdict(module, name, 4)
        if base.allowed:
            return Verdict(module, dotted, True, Severity.INFO,
                           "an attribute of an allowed object, kept as data (never called "
                           "while loading)")
        return Verdict(module, dotted, False, base.severity, base.reason)

    def kept_as_data(self, module: str, name: str, proto: int = 4) -> bool:
        """May be imported to be kept, though not called while loading: reviewed as data
        (:meth:`data_only`), or an attribute of an allowed class (``interp1d._call_linear_np``,
        a method stored for its own class to call)."""
        module, name = canonical(module, name, proto)
        if self.data_only(module, name):
            return True
        owner, dot, attribute = name.rpartition(".")
        return bool(dot) and self.attribute(module, owner, attribute, called=False).allowed

    def rebuild_only(self, module: str, name: str, proto: int = 4) -> bool:
        """A class whose ``__init__`` reaches a sink, reviewed to be rebuilt the way pickles
        rebuild instances (``cls.__new__``, then its state): calling it is a finding."""
        module, name = canonical(module, name, proto)
        return self._rule(f"{module}:{name}") in REBUILD_RULES

    def data_only(self, module: str, name: str, proto: int = 4) -> bool:
        """Reviewed to be kept as data (a scorer, a callback, a loss function), not to be
        called while loading: a pickle that calls it is a finding."""
        module, name = canonical(module, name, proto)
        entry = f"{module}:{name}"
        return entry in self.data or self._rule(entry) in DATA_RULES


CONSTANT_CALLS: Final = frozenset({
    ("operator", "attrgetter"), ("operator", "itemgetter"), ("operator", "methodcaller"),
    ("logging", "getLogger"), ("_io", "BytesIO"), ("io", "BytesIO"), ("builtins", "type"),
})
"""Callables of denylisted modules that, given constant arguments, build a value that is only
data (:func:`constant_call` says which arguments). How the standard library pickles its own
objects: ``itemgetter(0, 2)``, ``attrgetter("real")``, ``methodcaller("split", ",")``,
``getLogger("name")``, a ``BytesIO``, ``type(None)`` (``NoneType`` has no importable name).
The value built is data: calling it while loading is rule 3 (``pickle.call.indeterminate``), and
the scanner and :class:`RestrictedUnpickler` refuse it as an argument of a call (a
``methodcaller`` handed to something that calls its argument would call any method of any
object) and as a BUILD target (except a ``BytesIO``'s own buffer state)."""

CALLS_ARGUMENT: Final = frozenset({
    ("torch._tensor", "_rebuild_from_type"), ("torch._tensor", "_rebuild_from_type_v2"),
})
"""Allowed reconstructors that call their first argument (``func(*args)``): what they call is
judged as called by the pickle itself, so a value kept as data (a bound method, a partial, a
function reviewed as data) cannot be run through them."""

_CONSTANT_TYPES: Final = (str, int, float, bool, bytes, type(None))


def constant_call(module: str, name: str, args: object, proto: int = 4) -> str | None:
    """Why ``module.name(*args)`` builds only data, or ``None`` when it may not be called so.

    ``args`` are the call's positional arguments as the unpickler would pass them (the scanner
    passes the constants it read). Steps: 1. only the callables of :data:`CONSTANT_CALLS`;
    2. every argument a constant (no object the pickle built or imported); 3. per callable:
    attribute paths without dunders or name-mangled parts (``attrgetter("__globals__")``
    reaches interpreter internals), a method name that is public (``methodcaller`` calls it on
    whatever it is applied to), a logger's name, a buffer's initial bytes, the type of a
    constant (``type(None)``; three-argument ``type()`` makes a class).
    """
    key = canonical(module, name, proto)
    # 1.
    if key not in CONSTANT_CALLS or type(args) is not tuple:
        return None
    # 2.
    if not all(type(a) in _CONSTANT_TYPES for a in args):
        return None
    # 3.
    if key == ("operator", "attrgetter"):
        ok = bool(args) and all(type(a) is str and a and all(
            part.isidentifier() and not part.startswith("__") for part in a.split("."))
            for a in args)
        return "an attribute getter of constant, public paths" if ok else None
    if key == ("operator", "itemgetter"):
        return "an item getter of constant keys" if args else None
    if key == ("operator", "methodcaller"):
        ok = bool(args) and type(args[0]) is str and args[0].isidentifier() and not (
            args[0].startswith("_"))
        return "a caller of a public method by constant name and arguments" if ok else None
    if key == ("logging", "getLogger"):
        ok = len(args) <= 1 and all(type(a) is str for a in args)
        return "a logger looked up by name" if ok else None
    if key[1] == "BytesIO":
        ok = len(args) <= 1 and all(type(a) in (bytes, type(None)) for a in args)
        return "an in-memory buffer of constant bytes" if ok else None
    # builtins.type
    return "the type of a constant" if len(args) == 1 else None


CLASS_FACTORIES: Final = frozenset({("sympy.core.function", "_rebuild_undef")})
"""Reviewed reconstructors that return a class of their own family, which the pickle then calls
(NEWOBJ): ``sympy.core.function._rebuild_undef(name, assumptions)`` is ``Function(name,
**assumptions)``, an ``UndefinedFunction`` whose instances are ``AppliedUndef``. Calling the
result constructs that class; :func:`class_factory` admits only arguments that cannot put code in
the new class (its keyword arguments become class attributes)."""


def class_factory(module: str, name: str, args: object) -> str | None:
    """Why calling the class ``module.name(*args)`` returns is constructing a reviewed
    family's class, or ``None``: a name, and assumptions (``real=True``) as public names with
    ``True`` / ``False`` / ``None`` values, which sympy turns into ``is_real`` flags."""
    if (module, name) not in CLASS_FACTORIES or type(args) is not tuple or len(args) != 2:
        return None
    label, assumptions = args
    if type(label) is not str or not label.isidentifier() or type(assumptions) is not dict:
        return None
    if not all(type(k) is str and k.isidentifier() and not k.startswith("_")
               and (v is None or type(v) is bool) for k, v in assumptions.items()):
        return None
    return "sympy's undefined function class, with assumptions only"


GETATTR: Final = ("builtins", "getattr")
"""How pickles spell a bound method or an Enum member: ``getattr(owner, "name")``."""


@runtime_checkable
class PolicyAware(Protocol):
    """A scanner whose verdicts depend on the globals policy (pickle-bearing formats)."""

    def with_policy(self, policy: Policy) -> FormatScanner:
        """The same scanner judging imports by ``policy``."""
        ...


TORCHSCRIPT_MODULES: Final = frozenset({"__torch__"})
"""``__torch__.*`` names the classes TorchScript compiles from an archive's own ``code/``.
Python's unpickler cannot import them (there is no such module: ``pickle.load`` fails), and
TorchScript's own unpickler resolves them to that code, which the scanner reviews instead
(``formats/torchscript.py``). So a TorchScript archive is not flagged for naming them."""
TORCHSCRIPT_NAMES: Final = frozenset({
    f"torch.jit._pickle:{n}" for n in (
        "build_intlist", "build_tensorlist", "build_doublelist", "build_boollist",
        "build_tensor_from_id", "restore_type_tag",
    )
})
"""TorchScript's list builders (``torch/jit/_pickle.py``): each returns its argument or builds
a list from it; nothing else."""


@functools.cache
def _builtin_allowlist() -> frozenset[str]:
    """Read once per process (every ``scan()`` call starts from the default policy)."""
    return frozenset(json.loads(_ALLOWLIST.read_text("utf-8"))["allow"]) | TORCHSCRIPT_NAMES


DATA_RULES: Final = frozenset({"function.data", "object.constant"})
"""Ecosystem rules that admit an object as data only: loading may import it, never call it."""
REBUILD_RULES: Final = frozenset({"class.new-only"})
"""Ecosystem rules that admit a class to be rebuilt by ``cls.__new__``, never called."""


@functools.cache
def _ecosystem() -> dict[str, str]:
    """``module:name`` -> the rule that admitted it, over every reviewed library (whatever
    version is installed: a name reviewed at one version is the same object at another only
    as far as its library keeps it, and an entry that is gone cannot be imported)."""
    libraries = json.loads(_ECOSYSTEM.read_text("utf-8"))["libraries"]
    return {e: rule for lib in libraries.values() for rule, entries in lib["rules"].items()
            for e in entries}


@functools.cache
def _builtin_data() -> frozenset[str]:
    """The curated names a pickle may keep but never call (``allowlist.json``'s ``data``)."""
    return frozenset(json.loads(_ALLOWLIST.read_text("utf-8")).get("data", ()))


def _in_modules(module: str, modules: frozenset[str]) -> bool:
    return any(module == m or module.startswith(m + ".") for m in modules)
