"""Loading pickles under the scanner's policy, so that loading and scanning never disagree.

    >>> import io, pickle, collections
    >>> from bastion.scan.pickle import RestrictedUnpickler
    >>> data = pickle.dumps(collections.OrderedDict(a=1))
    >>> RestrictedUnpickler(io.BytesIO(data)).load()
    OrderedDict({'a': 1})

Built on the pure-Python unpickler so that BUILD can be refused on imported objects (rule 5 of
the scanner), which the C unpickler does not let a subclass intercept. Use it directly, or as
``torch.load(f, pickle_module=bastion.scan.pickle.restricted, weights_only=False)``.
"""

from __future__ import annotations

import copyreg
import functools
import inspect
import io
import pickle
import sys
import types
from collections.abc import Callable
from typing import IO, Any, ClassVar, Final

from bastion.errors import BastionError
from bastion.scan.pickle._state import check_state
from bastion.scan.pickle.policy import (
    CALLS_ARGUMENT,
    CONSTANT_CALLS,
    GETATTR,
    Policy,
    canonical,
    constant_call,
)

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "load", "loads"]

_LOAD_FROM_BYTES: Final = ("torch.storage", "_load_from_bytes")
"""How a tensor's storage pickles outside ``torch.save``: ``torch.load`` of constant bytes."""

_DEFAULT: Policy | None = None
_RECONSTRUCTOR: Final = copyreg._reconstructor  # type: ignore[attr-defined]


class UnsafePickleError(BastionError, pickle.UnpicklingError):
    """The pickle asks for something the policy does not allow; nothing of it was run."""


def _default_policy() -> Policy:
    global _DEFAULT  # noqa: PLW0603 - the parsed allowlist is cached once per process
    if _DEFAULT is None:
        _DEFAULT = Policy.default()
    return _DEFAULT


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that imports only what ``policy`` allows and never BUILDs on imports."""

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)
    proto: int
    stack: list[Any]
    load_build: Callable[[], None]
    load_reduce: Callable[[], None]
    load_newobj: Callable[[], None]
    load_newobj_ex: Callable[[], None]

    def __init__(self, file: IO[bytes], *, policy: Policy | None = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.policy = policy or _default_policy()
        self._kept: list[Any] = []
        self._kept_ids: set[int] = set()
        """Admitted as data: never called."""
        self._rebuilt_ids: set[int] = set()
        self._imported: set[int] = set()
        """Everything find_class returned from an import."""
        self._constants: dict[int, tuple[str, str]] = {}
        """The :data:`CONSTANT_CALLS` imports: called only with constants (rule 10)."""
        self._built: set[int] = set()
        """What those calls built: data, never called, passed to a call or BUILT on."""
        self._newers: set[int] = set()
        """``C.__new__`` closures (:meth:`_new`): a partial of one is NEWOBJ_EX."""
        """Classes admitted to be rebuilt by ``cls.__new__`` (NEWOBJ), never initialised."""

    def find_class(self, module: str, name: str) -> Any:
        """Import ``module.name`` only when the policy allows it (same canonicalisation).

        ``builtins.getattr`` is answered with :meth:`_getattr`, which admits what the scanner
        admits (:meth:`Policy.attribute`) and nothing else.
        """
        if canonical(module, name, self.proto) == GETATTR:
            return self._getattr
        if canonical(module, name, self.proto) == ("functools", "partial"):
            return self._partial
        if canonical(module, name, self.proto) == _LOAD_FROM_BYTES:
            return self._load_from_bytes
        key = canonical(module, name, self.proto)
        if key in CONSTANT_CALLS:
            value = self._import(*key)
            self._constants[id(value)] = key
            return value
        if key in CALLS_ARGUMENT and self.policy.verdict(module, name, self.proto).allowed:
            return self._calls_argument(self._import(*key))
        verdict = self.policy.verdict(module, name, self.proto)
        if verdict.allowed:
            return self._import(verdict.module, verdict.name)
        if self.policy.kept_as_data(verdict.module, verdict.name):
            return self._keep(self._import(verdict.module, verdict.name))
        if self.policy.rebuild_only(verdict.module, verdict.name):
            cls = self._import(verdict.module, verdict.name)
            self._rebuilt_ids.add(id(cls))
            return cls
        raise UnsafePickleError(
            f"refusing to import {verdict.qualified}: {verdict.reason}",
            hint="scan the file first; allow the name in the policy only if you trust its "
            "author",
        )

    def _import(self, module: str, name: str) -> Any:
        value = super().find_class(module, name)
        self._kept.append(value)  # held, so that its id stays its own
        self._imported.add(id(value))
        return value

    def _keep(self, value: Any) -> Any:
        """Admit ``value`` as data: it may be stored, never called while loading."""
        self._kept.append(value)  # held, so that its id stays its own
        self._kept_ids.add(id(value))
        return value

    def _calls_argument(self, rebuild: Callable[..., Any]) -> Callable[..., Any]:
        """``torch._tensor._rebuild_from_type_v2(func, ...)`` calls ``func``: only a callable
        this load imported and may call (rule 11), or the restricted ``_load_from_bytes``."""
        def checked(func: Any, *args: Any) -> Any:
            if not (func == self._load_from_bytes or (
                    id(func) in self._imported and id(func) not in self._constants)):
                raise UnsafePickleError(
                    f"refusing {rebuild.__qualname__} of {func!r}: it calls its first "
                    "argument, which is not an import admitted to be called",
                    hint="scan the file: the scanner reports pickle.call.indirect")
            return rebuild(self._callable(func), *args)
        return checked

    def _constant_call(self, func: Any, args: Any, kwargs: Any = None) -> bool:
        """Rule 10 for a call about to run: ``True`` when ``func`` is one of the
        :data:`CONSTANT_CALLS` and its arguments pass :func:`constant_call` (the result is
        then recorded as built data); raises when they do not."""
        key = self._constants.get(id(func))
        if key is None:
            return False
        if kwargs or not isinstance(args, tuple) or constant_call(*key, args) is None:
            raise UnsafePickleError(
                f"refusing {key[0]}.{key[1]}{args!r}: only constant arguments build data",
                hint="scan the file: the scanner reports the import")
        return True

    def _check_arguments(self, *values: Any) -> None:
        """Rule 10: no value built by a constant call, nor such an import, is handed to a
        call (containers and the returned value may hold them)."""
        if not self._built and not self._constants:
            return
        stack, seen = list(values), 0
        while stack and seen < 10_000:
            v = stack.pop()
            seen += 1
            if id(v) in self._built or id(v) in self._constants:
                raise UnsafePickleError(
                    f"refusing to hand {v!r} to a call: it was built (or imported) to be kept "
                    "as data", hint="scan the file: the scanner reports the import")
            if isinstance(v, tuple | list | set | frozenset):
                stack.extend(v)
            elif isinstance(v, dict):
                stack.extend(v.keys())
                stack.extend(v.values())

    def _call(self, func: Any, args: Any, kwargs: Any = None) -> bool:
        """Checks common to every call; ``True`` when the result is built data (rule 10)."""
        if self._constant_call(func, args, kwargs):
            return True
        if id(func) not in _CONTAINERS:
            self._check_arguments(args, kwargs)
        return False

    def _callable(self, func: Any, *, initialises: bool = True) -> Any:
        if id(func) in self._built:
            raise UnsafePickleError(
                f"refusing to call {func!r} while loading: it was built to be kept as data",
                hint="allow the name in the policy only if you trust the file's author")
        if initialises and id(func) in self._rebuilt_ids:
            raise UnsafePickleError(
                f"refusing to call {func!r} while loading: it was admitted to be rebuilt "
                "without its __init__, which reaches a file, process or network call",
                hint="allow the name in the policy only if you trust the file's author",
            )
        if id(func) in self._kept_ids:
            raise UnsafePickleError(
                f"refusing to call {getattr(func, '__qualname__', func)!r} while loading: it "
                "was admitted to be kept as data, not called",
                hint="allow the name in the policy only if you trust the file's author",
            )
        return func

    def _built_data(self) -> None:
        self._kept.append(self.stack[-1])  # held, so that its id stays its own
        self._built.add(id(self.stack[-1]))

    def _load_reduce(self) -> None:
        func, args = self.stack[-2], self.stack[-1]
        self._callable(func)
        if func is _RECONSTRUCTOR and isinstance(args, tuple) and len(args) > 1:
            self._callable(args[1])  # _reconstructor runs base.__init__
        built = self._call(func, args)
        self.load_reduce()
        if built:
            self._built_data()

    def _load_newobj(self) -> None:
        self._callable(self.stack[-2], initialises=False)
        built = self._call(self.stack[-2], self.stack[-1])
        self.load_newobj()
        if built:
            self._built_data()

    def _load_newobj_ex(self) -> None:
        self._callable(self.stack[-3], initialises=False)
        built = self._call(self.stack[-3], self.stack[-2], self.stack[-1] or None)
        self.load_newobj_ex()
        if built:
            self._built_data()

    def _instantiate(self, klass: Any, args: Any) -> None:  # OBJ and INST
        built = self._call(klass, tuple(args))
        super()._instantiate(self._callable(klass), args)  # type: ignore[misc]
        if built:
            self._built_data()

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex

    def _partial(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """``functools.partial`` of a function this load imported (allowed or kept as data):
        kept as data itself, so this load cannot call it."""
        if id(func) in self._newers:  # partial(C.__new__, C, ...): NEWOBJ_EX (protocol < 4)
            return functools.partial(func, *args, **kwargs)
        if (id(func) not in self._imported and id(func) not in self._kept_ids) or (
                id(func) in self._built or id(func) in self._constants):
            raise UnsafePickleError("refusing functools.partial of something this load did "
                                    "not import", hint="only partials of reviewed functions, "
                                    "and of methods of objects this load built")
        self._check_arguments(args, kwargs)
        return self._keep(functools.partial(func, *args, **kwargs))

    def _getattr(self, owner: Any, attribute: Any) -> Any:
        """``getattr`` by a constant name, as the scanner judges it (:meth:`Policy.attribute`).

        On an imported class or function: called while loading only when the dotted name is
        itself allowed (a reconstructor such as ``zoneinfo.ZoneInfo._unpickle``), else kept as
        data. On an object this load built (a compiled pattern's ``search``): a method or a
        plain attribute, looked up without running properties, kept as data.
        """
        if attribute == "__new__" and isinstance(owner, type) and id(owner) in self._imported:
            new = self._new(owner)
            self._kept.append(new)  # held, so that its id stays its own
            self._newers.add(id(new))
            return new
        if not isinstance(attribute, str) or (
                attribute.startswith("__") and attribute.endswith("__")):
            raise UnsafePickleError(f"refusing getattr of {attribute!r}",
                                    hint="only a constant, non-dunder name is admitted")
        if not isinstance(owner, type | types.FunctionType | types.BuiltinFunctionType):
            return self._keep(self._instance_attribute(owner, attribute))
        module, qualname = getattr(owner, "__module__", None), getattr(owner, "__qualname__", None)
        if not (isinstance(module, str) and isinstance(qualname, str)):
            raise UnsafePickleError("refusing getattr on an object nobody imported",
                                    hint="only getattr(<allowed class>, 'name') is admitted")
        verdict = self.policy.attribute(module, qualname, attribute, called=False)
        if not verdict.allowed:
            raise UnsafePickleError(f"refusing getattr {verdict.qualified}: {verdict.reason}",
                                    hint="allow the dotted name only if you trust its author")
        value = getattr(owner, attribute)
        if not self.policy.attribute(module, qualname, attribute, called=True).allowed:
            return self._keep(value)  # stored as data; refused if this load calls it
        return value

    @staticmethod
    def _new(owner: type) -> Callable[..., Any]:
        """``owner.__new__``, for ``owner`` only: what NEWOBJ does."""
        def new(cls: Any, *args: Any, **kwargs: Any) -> Any:
            if cls is not owner:
                raise UnsafePickleError(f"refusing {owner.__qualname__}.__new__ of {cls!r}",
                                        hint="__new__ is admitted for its own class only")
            return owner.__new__(cls, *args, **kwargs)
        return new

    @staticmethod
    def _instance_attribute(owner: Any, attribute: str) -> Any:
        static = inspect.getattr_static(owner, attribute)
        if attribute in getattr(owner, "__dict__", {}):
            return static  # the instance's own attribute: no descriptor involved
        if isinstance(static, types.FunctionType | types.MethodDescriptorType
                      | types.WrapperDescriptorType):
            return static.__get__(owner, type(owner))  # a bound method: binding runs nothing
        if inspect.isdatadescriptor(static) or hasattr(static, "__get__"):
            raise UnsafePickleError(
                f"refusing getattr of {attribute!r}: a property or descriptor runs code",
                hint="only methods and plain attributes of objects built while loading")
        return static

    def _load_from_bytes(self, data: Any) -> Any:
        """``torch.storage._load_from_bytes(data)`` under this unpickler's policy.

        The real one runs ``torch.load(io.BytesIO(data), weights_only=False)`` with the full
        unpickler; the scanner judges the bytes as the legacy stream they are, so here they
        load through this module instead, under the same policy.
        """
        if not isinstance(data, bytes | bytearray):
            raise UnsafePickleError(
                "refusing torch.storage._load_from_bytes of something that is not bytes",
                hint="a tensor's storage pickles as constant bytes; anything else was made "
                "at load time and cannot be vetted",
            )
        import torch

        return torch.load(io.BytesIO(data), pickle_module=sys.modules[__name__],
                          weights_only=False, policy=self.policy)

    def _load_build(self) -> None:
        if len(self.stack) < 2:
            raise UnsafePickleError("BUILD with nothing to build", hint="the pickle is broken")
        target, state = self.stack[-2], self.stack[-1]
        if id(target) in self._built and not (
                isinstance(target, io.BytesIO) and isinstance(state, tuple) and len(state) == 3
                and isinstance(state[0], bytes) and type(state[1]) is int and not state[2]):
            raise UnsafePickleError(f"refusing BUILD on {target!r}: it was built to be kept "
                                    "as data", hint="only a BytesIO's own buffer state")
        if isinstance(target, type | types.ModuleType) or inspect.isroutine(target):
            raise UnsafePickleError(
                f"refusing BUILD on the imported object {target!r}",
                hint="BUILD on a class, module or function rewrites it in this process",
            )
        for part in state if isinstance(state, tuple) else (state,):
            problem = check_state(part) if isinstance(part, dict) else None
            if problem is not None:
                raise UnsafePickleError(f"refusing a state that its class runs as code: {problem}",
                                        hint="scan the file: the scanner reports pickle.state.code")
        if isinstance(target, functools.partial) and not (
                isinstance(state, tuple) and state and state[0] is target.func):
            raise UnsafePickleError("refusing BUILD that swaps a partial's function",
                                    hint="a partial keeps the function it was made with")
        self.load_build()

    dispatch[pickle.BUILD[0]] = _load_build


_CONTAINERS: Final = frozenset(map(id, (set, frozenset, list, tuple, dict,
                                        __import__("collections").OrderedDict,
                                        __import__("collections").deque)))
"""Calls that only hold their arguments (the scanner's ``_CONTAINERS``)."""


def load(file: IO[bytes], **kwargs: Any) -> Any:
    """``pickle.load`` under the default policy."""
    return RestrictedUnpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    """``pickle.loads`` under the default policy."""
    import io

    return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


Unpickler = RestrictedUnpickler
"""So this module can stand in for ``pickle`` (``torch.load(..., pickle_module=...)``)."""
