"""Dataset validation and verification (NCSC 2.2, 2.5, 2.6): profile, quality checks, leakage
between splits, label audits, label errors, poisoning and backdoors, capacity and sufficiency.

    >>> from bastion.data import load_dataset, profile_dataset, check_dataset
    >>> ds = load_dataset("train.csv", label="y")                 # doctest: +SKIP
    >>> profile_dataset(ds).rows                                  # doctest: +SKIP
    1000
    >>> [f.rule for f in check_dataset(ds)]                       # doctest: +SKIP
    ['data.duplicates.exact']

Every check reads a :class:`Dataset` (``interface``) built by a loader (``loaders``); every
result is a list of :class:`bastion.findings.Finding` plus, where useful, a frozen result object.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.data.check import check_dataset
    from bastion.data.interface import (
        DataError,
        DataFormatError,
        Dataset,
        DatasetKind,
        DataValidationError,
    )
    from bastion.data.leakage import find_leakage
    from bastion.data.loaders import load_dataset
    from bastion.data.profile import DatasetProfile, profile_dataset
    from bastion.data.schema import DataSchema

# Loaded on first use: pandas and scipy cost a second, and most commands never need them.
_HOME = {
    "check_dataset": "check",
    "DataError": "interface",
    "DataFormatError": "interface",
    "Dataset": "interface",
    "DatasetKind": "interface",
    "DataValidationError": "interface",
    "find_leakage": "leakage",
    "load_dataset": "loaders",
    "DatasetProfile": "profile",
    "profile_dataset": "profile",
    "DataSchema": "schema",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'bastion.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bastion.data.{_HOME[name]}"), name)

__all__ = [
    "DataError",
    "DataFormatError",
    "DataSchema",
    "DataValidationError",
    "Dataset",
    "DatasetKind",
    "DatasetProfile",
    "check_dataset",
    "find_leakage",
    "load_dataset",
    "profile_dataset",
]
