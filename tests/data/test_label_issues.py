"""Confident learning finds planted label noise; given probabilities are checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from bastion.data.interface import Dataset, DatasetKind, DataValidationError
from bastion.data.label_issues import find_label_issues
from bastion.findings import Severity


def _noisy(seed: int = 0) -> tuple[Dataset, np.ndarray]:
    X, y = make_classification(n_samples=600, n_features=10, n_informative=8, n_classes=3,
                               class_sep=3.0, flip_y=0.0, n_clusters_per_class=1,
                               random_state=seed)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(y), 30, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 3, 30)) % 3
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    ds = Dataset(source="noisy.csv", kind=DatasetKind.TABULAR, frame=frame, labels=noisy,
                 label_name="y")
    return ds, np.sort(flipped)


def test_planted_label_noise_is_found() -> None:
    ds, flipped = _noisy()
    issues = find_label_issues(ds)
    found = set(issues.indices.tolist())
    true_positive = len(found & set(flipped.tolist()))
    assert true_positive / len(flipped) >= 0.8      # recall
    assert true_positive / len(found) >= 0.7        # precision
    finding = issues.findings(ds)[0]
    assert finding.rule == "data.labels.issues" and finding.severity is Severity.HIGH
    first = int(issues.indices[0])
    assert issues.given[0] == str(ds.labels[first]) and issues.suggested[0] != issues.given[0]


def test_user_probabilities_are_used_and_checked() -> None:
    ds, _ = _noisy()
    probs = np.full((len(ds), 3), 0.05)
    probs[np.arange(len(ds)), ds.label_codes] = 0.9
    probs[7] = [0.9, 0.05, 0.05] if ds.label_codes[7] != 0 else [0.05, 0.9, 0.05]
    issues = find_label_issues(ds, pred_probs=probs)
    assert issues.indices.tolist() == [7]
    with pytest.raises(DataValidationError, match="shape"):
        find_label_issues(ds, pred_probs=probs[:, :2])
