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

import inspect
import pickle
import types
from collections.abc import Callable
from typing import IO, Any, ClassVar

from bastion.errors import BastionError
from bastion.scan.pickle.policy import GETATTR, Policy, canonical

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "load", "loads"]

_DEFAULT: Policy | None = None


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

    def __init__(self, file: IO[bytes], *, policy: Policy | None = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.policy = policy or _default_policy()

    def find_class(self, module: str, name: str) -> Any:
        """Import ``module.name`` only when the policy allows it (same canonicalisation).

        ``builtins.getattr`` is answered with :meth:`_getattr`, which admits what the scanner
        admits (:meth:`Policy.attribute`) and nothing else.
        """
        if canonical(module, name, self.proto) == GETATTR:
            return self._getattr
        verdict = self.policy.verdict(module, name, self.proto)
        if not verdict.allowed:
            raise UnsafePickleError(
                f"refusing to import {verdict.qualified}: {verdict.reason}",
                hint="scan the file first; allow the name in the policy only if you trust its "
                "author",
            )
        return super().find_class(verdict.module, verdict.name)

    def _getattr(self, owner: Any, attribute: Any) -> Any:
        """``getattr`` on an imported object the policy allows, by a constant name.

        The scanner cannot know whether a method fetched as data is later called by the
        loading program, so here a routine is admitted only when the dotted name is itself
        allowed (a reconstructor such as ``zoneinfo.ZoneInfo._unpickle``).
        """
        module, qualname = getattr(owner, "__module__", None), getattr(owner, "__qualname__", None)
        if not (isinstance(attribute, str) and isinstance(module, str)
                and isinstance(qualname, str)):
            raise UnsafePickleError(
                "refusing getattr on an object that is not an imported class or function",
                hint="only getattr(<allowed class>, 'name') is admitted",
            )
        verdict = self.policy.attribute(module, qualname, attribute, called=False)
        if verdict.allowed:
            value = getattr(owner, attribute)
            if inspect.isroutine(value):
                verdict = self.policy.attribute(module, qualname, attribute, called=True)
        if not verdict.allowed:
            raise UnsafePickleError(f"refusing getattr {verdict.qualified}: {verdict.reason}",
                                    hint="allow the dotted name only if you trust its author")
        return value

    def _load_build(self) -> None:
        target = self.stack[-1]
        if isinstance(target, type | types.ModuleType) or inspect.isroutine(target):
            raise UnsafePickleError(
                f"refusing BUILD on the imported object {target!r}",
                hint="BUILD on a class, module or function rewrites it in this process",
            )
        self.load_build()

    dispatch[pickle.BUILD[0]] = _load_build


def load(file: IO[bytes], **kwargs: Any) -> Any:
    """``pickle.load`` under the default policy."""
    return RestrictedUnpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    """``pickle.loads`` under the default policy."""
    import io

    return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


Unpickler = RestrictedUnpickler
"""So this module can stand in for ``pickle`` (``torch.load(..., pickle_module=...)``)."""
