"""Benchmark: label-error detection on scikit-learn digits with 10% uniform label noise.

Bastion (`find_label_issues`: out-of-fold logistic regression + cleanlab's confident learning)
against cleanlab used directly: (a) `cleanlab.filter.find_label_issues` on the same
probabilities (Bastion must add no loss), (b) `CleanLearning(LogisticRegression())`, cleanlab's
own end-to-end path. Precision and recall of the flagged items against the flipped ones.

    .venv/bin/python bench/data_label_errors.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from cleanlab.classification import CleanLearning
from cleanlab.filter import find_label_issues as cleanlab_find
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bastion.data.interface import Dataset, DatasetKind
from bastion.data.label_issues import find_label_issues, out_of_fold_probabilities


def score(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hit = np.isin(flagged, np.flatnonzero(truth)).sum()
    return hit / max(len(flagged), 1), hit / truth.sum()


def main() -> None:
    warnings.filterwarnings("ignore")
    digits = load_digits()
    rows = []
    for seed in (0, 1, 2):
        rng = np.random.default_rng(seed)
        y = digits.target.copy()
        noisy = rng.random(len(y)) < 0.10
        y[noisy] = (y[noisy] + rng.integers(1, 10, noisy.sum())) % 10  # uniform over the others
        frame = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(64)])
        ds = Dataset(source="digits", kind=DatasetKind.ARRAY, frame=frame, labels=y,
                     label_name="label")
        start = time.perf_counter()
        issues = find_label_issues(ds, seed=seed)
        t_bastion = time.perf_counter() - start
        probs = out_of_fold_probabilities(ds, seed=seed)
        start = time.perf_counter()
        direct = np.flatnonzero(cleanlab_find(labels=y, pred_probs=probs))
        t_direct = time.perf_counter() - start
        start = time.perf_counter()
        learner = CleanLearning(make_pipeline(StandardScaler(),
                                              LogisticRegression(max_iter=2000)), seed=seed)
        found = learner.find_label_issues(digits.data, y)
        end_to_end = np.flatnonzero(found["is_label_issue"].to_numpy())
        t_e2e = time.perf_counter() - start
        for name, flagged, seconds in (("bastion", issues.indices, t_bastion),
                                       ("cleanlab.filter (same probs)", direct, t_direct),
                                       ("cleanlab CleanLearning", end_to_end, t_e2e)):
            p, r = score(flagged, noisy)
            rows.append({"seed": seed, "method": name, "noisy": int(noisy.sum()),
                         "flagged": len(flagged), "precision": p, "recall": r,
                         "seconds": seconds})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows).groupby("method")[["flagged", "precision", "recall",
                                                  "seconds"]].mean()
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
