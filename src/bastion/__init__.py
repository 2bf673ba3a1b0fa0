"""Bastion: the UK NCSC Principles for the security of machine learning, made practical.

The library mirrors the command line. The names a script needs most are here, each imported on
first use (``bastion --version`` loads none of them)::

    import bastion

    report = bastion.scan("downloads/")           # is it safe to load? (runs nothing)
    ws = bastion.init_workspace(Path("project"))    # or bastion.Workspace.find()
    catalog = bastion.Catalog(ws)
    catalog.add_model("digits", Path("model.skops"))

Packages, by layer (``docs/architecture.md``): fronts (``cli``, ``server``, ``client``) use
services (``scan``, ``deps``, ``data``, ``catalog``, ``report``), which use ``models`` and
``store``, which use the vocabulary (``findings``, ``errors``, ``config``, ``atlas``).

This module imports none of them, not even for type checking: every package may read
``bastion.__version__`` without an import running back up the layers. For static types, import
a name from its own module (``from bastion.catalog.service import Catalog``).
"""

from __future__ import annotations

import importlib
from typing import Any, Final

__version__ = "0.1.0"

_HOME: Final = {
    "Catalog": "bastion.catalog.service",
    "CatalogAPI": "bastion.catalog.api",
    "Finding": "bastion.findings",
    "Location": "bastion.findings",
    "Principle": "bastion.findings",
    "Severity": "bastion.findings",
    "ScanReport": "bastion.scan.interface",
    "Workspace": "bastion.store.workspace",
    "init_workspace": "bastion.store.workspace",
}

__all__ = [
    "Catalog",
    "CatalogAPI",
    "Finding",
    "Location",
    "Principle",
    "ScanReport",
    "Severity",
    "Workspace",
    "__version__",
    "init_workspace",
    "scan",
]


def __getattr__(name: str) -> Any:
    """Public names are imported on first use (PEP 562)."""
    if name == "scan":  # the package, callable as its scan function (see bastion.scan)
        return importlib.import_module("bastion.scan")
    if name not in _HOME:
        raise AttributeError(f"module 'bastion' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
