"""Automatic label-error detection by confident learning (Northcutt et al., JAIR 2021), via
cleanlab, on out-of-fold probabilities from a quick baseline model or on the user's own.

Out-of-fold matters: a model scoring the samples it was trained on has memorised their labels,
wrong ones included, and finds nothing.

    >>> from bastion.data import load_dataset
    >>> from bastion.data.label_issues import find_label_issues
    >>> issues = find_label_issues(load_dataset("train.csv"))      # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion import atlas
from bastion.data.check import dataset_finding
from bastion.data.interface import Dataset, DataValidationError
from bastion.findings import Finding, Principle, Severity

__all__ = ["LabelIssues", "find_label_issues", "out_of_fold_probabilities"]

_EXAMPLES = 20


def out_of_fold_probabilities(
    dataset: Dataset, *, folds: int = 5, seed: int = 0
) -> npt.NDArray[np.float64]:
    """Class probabilities for every sample from a model that never saw it: standardised
    logistic regression, ``folds``-fold stratified cross-validation."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = dataset.label_codes
    smallest = int(np.bincount(y).min())
    if smallest < 2:
        raise DataValidationError(
            f"{dataset.source}: a class has a single sample; out-of-fold probabilities need two",
            hint="collect more samples of the rare class or drop it")
    model = make_pipeline(SimpleImputer(keep_empty_features=True), StandardScaler(),
                          LogisticRegression(max_iter=2000))
    splitter = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)
    probs = cross_val_predict(model, dataset.matrix, y, cv=splitter, method="predict_proba")
    return np.asarray(probs, dtype=np.float64)


@dataclass(frozen=True)
class LabelIssues:
    """Samples whose given label the evidence contradicts."""

    indices: npt.NDArray[np.int64]
    """Rows with a likely wrong label, most certain first."""
    given: tuple[str, ...]
    """Their labels as given."""
    suggested: tuple[str, ...]
    """The label the model believes instead."""
    quality: npt.NDArray[np.float64]
    """Label quality score of each flagged row (self-confidence; low is suspicious)."""

    def findings(self, dataset: Dataset) -> list[Finding]:
        """One finding summarising the flagged rows, if any."""
        if not len(self.indices):
            return []
        fraction = len(self.indices) / len(dataset)
        return [dataset_finding(
            dataset, "data.labels.issues",
            Severity.HIGH if fraction >= 0.05 else Severity.MEDIUM,
            f"{len(self.indices)} sample(s) ({fraction:.1%}) look mislabelled",
            principle=Principle.P2_2, techniques=(atlas.POISON_TRAINING_DATA,),
            detail="confident learning on out-of-fold probabilities contradicts their labels",
            remediation="review the listed rows (bastion data audit-sample); fix or remove",
            count=len(self.indices), fraction=fraction,
            rows=self.indices[:_EXAMPLES].tolist(),
            suggested=list(self.suggested[:_EXAMPLES]))]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"rows": self.indices.tolist(), "given": list(self.given),
                "suggested": list(self.suggested), "quality": self.quality.tolist()}


def find_label_issues(
    dataset: Dataset, *, pred_probs: npt.NDArray[np.float64] | None = None, seed: int = 0
) -> LabelIssues:
    """Likely label errors in ``dataset``; probabilities are computed out-of-fold unless given
    (rows in the order of the dataset, columns in the order of :attr:`Dataset.classes`)."""
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    y = dataset.label_codes
    probs = out_of_fold_probabilities(dataset, seed=seed) if pred_probs is None else pred_probs
    if probs.shape != (len(dataset), len(dataset.classes)):
        raise DataValidationError(
            f"probabilities have shape {probs.shape}, expected "
            f"({len(dataset)}, {len(dataset.classes)})",
            hint="one row per sample, one column per class in sorted label order")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0) or np.any(probs > 1):
        raise DataValidationError("probabilities must be finite and within [0, 1]")
    # n_jobs=1: cleanlab forks a pool otherwise, and a fork of a process that already runs
    # BLAS or torch threads can deadlock in the child (it did, in the test suite)
    ranked = np.asarray(cl_find(labels=y, pred_probs=probs, n_jobs=1,
                                return_indices_ranked_by="self_confidence"), dtype=np.int64)
    quality = np.asarray(get_label_quality_scores(y, probs), dtype=np.float64)
    classes = np.asarray(dataset.classes)
    return LabelIssues(indices=ranked,
                       given=tuple(classes[y[ranked]].tolist()),
                       suggested=tuple(classes[probs[ranked].argmax(axis=1)].tolist()),
                       quality=quality[ranked])
