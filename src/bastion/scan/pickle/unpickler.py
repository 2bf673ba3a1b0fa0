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
from bastion.scan.pickle.policy import Policy

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
        """Import ``module.name`` only when the policy allows it (same canonicalisation)."""
        verdict = self.policy.verdict(module, name, self.proto)
        if not verdict.allowed:
            raise UnsafePickleError(
                f"refusing to import {verdict.qualified}: {verdict.reason}",
                hint="scan the file first; allow the name in the policy only if you trust its "
                "author",
            )
        return super().find_class(verdict.module, verdict.name)

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
