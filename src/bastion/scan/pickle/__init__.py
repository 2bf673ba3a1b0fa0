"""A symbolic pickle machine and the globals policy that also drives a restricted unpickler.

    >>> import io, pickle
    >>> from bastion.findings import Location
    >>> from bastion.scan.interface import ScanLimits
    >>> from bastion.scan.pickle import Policy, scan_pickles
    >>> data = pickle.dumps(print, protocol=4)
    >>> [f.rule for f in scan_pickles(io.BytesIO(data), Location("x.pkl"), ScanLimits(),
    ...                               Policy.default(), end=len(data))]
    ['pickle.global.dangerous']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.scan.pickle._stream import scan_pickles
from bastion.scan.pickle.policy import Policy, Verdict

if TYPE_CHECKING:
    from bastion.scan.pickle import unpickler as restricted
    from bastion.scan.pickle.unpickler import RestrictedUnpickler, UnsafePickleError

__all__ = [
    "Policy",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "Verdict",
    "restricted",
    "scan_pickles",
]


def __getattr__(name: str) -> object:
    """The unpickler is imported on first use (scanning never needs it)."""
    if name in ("RestrictedUnpickler", "UnsafePickleError", "restricted"):
        import bastion.scan.pickle.unpickler as module
        return module if name == "restricted" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
