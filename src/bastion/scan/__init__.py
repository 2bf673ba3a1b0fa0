"""Scan model artifacts without executing them (NCSC 2.2 supply chain).

    >>> import pickle, tempfile, pathlib
    >>> from bastion.scan import scan
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "weights.bin").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    >>> report = scan(d, workers=1)
    >>> report.clean, [f.format.value for f in report.files]
    (True, ['pickle'])

Formats are recognised by content (``sniff``), each is read by its scanner (``formats``), and
pickles are interpreted symbolically (``pickle``) under an allowlist that also drives
:class:`~bastion.scan.pickle.RestrictedUnpickler`. See ``docs/scan.md``.
"""

from __future__ import annotations

import os
import sys
import types
from typing import TYPE_CHECKING, Any

from bastion.scan.engine import Progress, scan, scan_bytes
from bastion.scan.interface import Format, ScanError, ScanLimits, ScannedFile, ScanReport
from bastion.scan.pickle import Policy

if TYPE_CHECKING:
    from bastion.scan.pickle.unpickler import RestrictedUnpickler

__all__ = [
    "Format",
    "Policy",
    "Progress",
    "RestrictedUnpickler",
    "ScanError",
    "ScanLimits",
    "ScanReport",
    "ScannedFile",
    "scan",
    "scan_bytes",
]


class _CallableScan(types.ModuleType):
    """``bastion.scan(path)`` as DESIGN promises: the package itself calls :func:`scan`.

    ``bastion.scan`` is this package (Python binds a subpackage to its parent's attribute on
    import, so a function of that name in ``bastion/__init__.py`` would be replaced); making
    the package callable keeps both ``bastion.scan(path)`` and ``bastion.scan.scan(path)``.
    """

    def __call__(self, *paths: str | os.PathLike[str], **options: Any) -> ScanReport:
        return scan(*paths, **options)


sys.modules[__name__].__class__ = _CallableScan


def __getattr__(name: str) -> object:
    """``RestrictedUnpickler`` is imported on first use (scanning never needs it)."""
    if name == "RestrictedUnpickler":
        from bastion.scan.pickle.unpickler import RestrictedUnpickler

        return RestrictedUnpickler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
