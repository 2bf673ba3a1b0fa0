"""Leakage between splits: planted exact and near copies are found, and nothing else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bastion.data.interface import Dataset, DatasetKind, DataValidationError
from bastion.data.leakage import find_leakage
from bastion.findings import Principle, Severity


def _ds(matrix: np.ndarray, name: str) -> Dataset:
    frame = pd.DataFrame(matrix, columns=[f"f{i}" for i in range(matrix.shape[1])])
    return Dataset(source=name, kind=DatasetKind.TABULAR, frame=frame)


def test_planted_leakage_between_splits() -> None:
    rng = np.random.default_rng(1)
    train = rng.standard_normal((2000, 8))
    test = rng.standard_normal((300, 8))
    test[[5, 17, 100]] = train[[0, 1, 2]]                   # exact copies
    test[[40, 41]] = train[[10, 11]] + 1e-3                 # near copies
    findings = find_leakage({"train": _ds(train, "train"), "test": _ds(test, "test")})
    by_rule = {f.rule: f for f in findings}
    exact = by_rule["data.leakage.exact"]
    assert exact.evidence["rows"] == [5, 17, 100] and exact.principle is Principle.P2_5
    assert exact.severity is Severity.HIGH
    near = by_rule["data.leakage.near"]
    assert sorted(map(tuple, near.evidence["pairs"])) == [(10, 40), (11, 41)]


def test_no_leakage_between_independent_splits() -> None:
    rng = np.random.default_rng(2)
    splits = {n: _ds(rng.standard_normal((500, 4)), n) for n in ("train", "val", "test")}
    assert find_leakage(splits) == []


def test_splits_must_share_features() -> None:
    with pytest.raises(DataValidationError, match="different columns"):
        find_leakage({"a": _ds(np.zeros((2, 2)), "a"), "b": _ds(np.zeros((2, 3)), "b")})
    with pytest.raises(DataValidationError, match="at least two splits"):
        find_leakage({"a": _ds(np.zeros((2, 2)), "a")})
