"""Samples shared between train / validation / test splits (NCSC 2.5: honest key metrics).

A test sample that also sits in the training set measures memory, not generalisation. Exact
copies are found by row hashes, near copies by locality-sensitive hashing: no pairwise blow-up.

    >>> from bastion.data import load_dataset, find_leakage
    >>> train, test = load_dataset("train.csv"), load_dataset("test.csv")  # doctest: +SKIP
    >>> findings = find_leakage({"train": train, "test": test})          # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

import numpy as np

from bastion.data._dedup import near_pairs, standardise
from bastion.data.check import DEFAULT_NEAR_TOLERANCE, dataset_finding, duplicate_keys
from bastion.data.interface import Dataset, DataValidationError
from bastion.findings import Finding, Principle, Severity

__all__ = ["find_leakage"]

_EXAMPLES = 10


def _same_features(first: Dataset, second: Dataset) -> None:
    if first.pixels is None and list(first.frame.columns) != list(second.frame.columns):
        raise DataValidationError(
            f"{first.source} and {second.source} have different columns",
            hint="splits of one dataset must share their feature columns, in the same order",
        )
    if first.matrix.shape[1] != second.matrix.shape[1]:
        raise DataValidationError(
            f"{first.source} has {first.matrix.shape[1]} features, "
            f"{second.source} has {second.matrix.shape[1]}",
            hint="splits of one dataset must have the same features",
        )


def _pair(name_a: str, a: Dataset, name_b: str, b: Dataset, tolerance: float) -> list[Finding]:
    _same_features(a, b)
    hashes_a, hashes_b = duplicate_keys(a), duplicate_keys(b)
    out = []
    exact_b = np.flatnonzero(np.isin(hashes_b, hashes_a))
    if len(exact_b):
        fraction = len(exact_b) / len(b)
        out.append(dataset_finding(
            b, "data.leakage.exact",
            Severity.HIGH if fraction >= 0.01 else Severity.MEDIUM,
            f"{len(exact_b)} {name_b} sample(s) ({fraction:.1%}) also appear in {name_a}",
            principle=Principle.P2_5,
            detail="evaluation on training samples overstates the model's quality",
            remediation="deduplicate across splits, then split again (grouped if needed)",
            splits=[name_a, name_b], count=len(exact_b), rows=exact_b[:_EXAMPLES].tolist()))
    if tolerance <= 0 or a.matrix.shape[1] == 0:
        return out
    # Near copies: search the union of distinct rows, keep pairs that cross the splits and
    # are not exact copies (already reported).
    _, first_a = np.unique(hashes_a, return_index=True)
    keep_b = ~np.isin(hashes_b, hashes_a)
    _, first_b = np.unique(np.where(keep_b, hashes_b, 0), return_index=True)
    rows_b = np.sort(first_b[keep_b[first_b]])
    rows_a = np.sort(first_a)
    union = np.vstack([a.matrix[rows_a], b.matrix[rows_b]])
    scaled = standardise(union, per_feature=a.pixels is None)
    pairs = near_pairs(scaled, tolerance * np.sqrt(union.shape[1]))
    cross = (pairs.left < len(rows_a)) & (pairs.right >= len(rows_a))
    if cross.any():
        left = rows_a[pairs.left[cross]]
        right = rows_b[pairs.right[cross] - len(rows_a)]
        count = len(np.unique(right))
        fraction = count / len(b)
        out.append(dataset_finding(
            b, "data.leakage.near",
            Severity.HIGH if fraction >= 0.01 else Severity.MEDIUM,
            f"{count} {name_b} sample(s) ({fraction:.1%}) are near copies of {name_a} samples",
            principle=Principle.P2_5,
            detail=f"rows differing by at most {tolerance} standard deviations per feature",
            remediation="remove the near copies from the evaluation split",
            splits=[name_a, name_b], count=count,
            pairs=[[int(x), int(y)] for x, y in zip(left[:_EXAMPLES], right[:_EXAMPLES],
                                                   strict=True)]))
    return out


def find_leakage(
    splits: Mapping[str, Dataset], *, near_tolerance: float = DEFAULT_NEAR_TOLERANCE
) -> list[Finding]:
    """Exact and near duplicates between every pair of ``splits`` (in the order given: the
    later split of each pair is the one whose samples are counted)."""
    if len(splits) < 2:
        raise DataValidationError("leakage needs at least two splits",
                                  hint="give e.g. --split train=train.csv --split test=test.csv")
    findings: list[Finding] = []
    for (name_a, a), (name_b, b) in combinations(splits.items(), 2):
        findings += _pair(name_a, a, name_b, b, near_tolerance)
    return findings
