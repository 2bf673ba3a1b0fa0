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
