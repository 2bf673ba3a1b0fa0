"""Inter-annotator agreement: Cohen's kappa, Fleiss' kappa and Krippendorff's alpha (nominal).

Implemented here (a few lines each) rather than pulled in, and cross-checked in the tests against
scikit-learn and the textbook examples (Cohen 1960 as in Wikipedia; Fleiss 1971 via Wikipedia's
worked table; Krippendorff 2011, "Computing Krippendorff's alpha-reliability", nominal example).

    >>> from bastion.data.agreement import cohen_kappa
    >>> round(cohen_kappa(["a", "a", "b", "b"], ["a", "b", "b", "b"]), 3)
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from bastion.data.interface import DataValidationError

__all__ = ["cohen_kappa", "fleiss_kappa", "krippendorff_alpha"]


def cohen_kappa(first: Sequence[object], second: Sequence[object]) -> float:
    """Agreement of two raters on the same items, corrected for chance (Cohen 1960).

    Returns 1.0 when both raters used a single identical category (no disagreement possible).
    """
    if len(first) != len(second) or not len(first):
        raise DataValidationError("Cohen's kappa needs two equally long, non-empty label lists")
    a = np.asarray([str(x) for x in first])
    b = np.asarray([str(x) for x in second])
    categories, codes = np.unique(np.r_[a, b], return_inverse=True)
    k, n = len(categories), len(a)
    table = np.zeros((k, k))
    np.add.at(table, (codes[:n], codes[n:]), 1)
    observed = np.trace(table) / n
    expected = float(table.sum(axis=1) @ table.sum(axis=0)) / n**2
    return 1.0 if expected == 1.0 else float((observed - expected) / (1 - expected))


def fleiss_kappa(counts: npt.ArrayLike) -> float:
    """Agreement of many raters from an items × categories table of rating counts (Fleiss 1971).

    Every item must have the same number of ratings (at least two).
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] == 0:
        raise DataValidationError("Fleiss' kappa needs an items × categories count table")
    raters = table.sum(axis=1)
    if raters[0] < 2 or not np.all(raters == raters[0]):
        raise DataValidationError(
            "Fleiss' kappa needs the same number (two or more) of ratings for every item",
            hint="use Krippendorff's alpha when items have different numbers of ratings",
        )
    m = raters[0]
    per_item = ((table**2).sum(axis=1) - m) / (m * (m - 1))
    shares = table.sum(axis=0) / table.sum()
    observed, expected = per_item.mean(), float((shares**2).sum())
    return 1.0 if expected == 1.0 else float((observed - expected) / (1 - expected))


def krippendorff_alpha(ratings: pd.DataFrame) -> float:
    """Krippendorff's alpha for nominal data from a raters × items frame, missing as NaN/None.

    Items with fewer than two ratings are not pairable and are ignored, as in the definition.
    """
    pairable: list[list[str]] = []
    for item in ratings.columns:
        values = [str(v) for v in ratings[item].dropna().tolist()]
        if len(values) >= 2:
            pairable.append(values)
    if not pairable:
        raise DataValidationError("Krippendorff's alpha needs items with at least two ratings")
    categories = sorted({v for values in pairable for v in values})
    index = {c: i for i, c in enumerate(categories)}
    coincidence = np.zeros((len(categories), len(categories)))
    for values in pairable:
        counts = np.bincount([index[v] for v in values], minlength=len(categories))
        # every ordered pair of ratings of one item, weighted 1 / (m_u - 1)
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (len(values) - 1)
    marginals = coincidence.sum(axis=1)
    total = marginals.sum()
    observed_disagreement = total - np.trace(coincidence)
    expected_disagreement = (total**2 - (marginals**2).sum()) / (total - 1)
    if expected_disagreement == 0:
        return 1.0
    return float(1 - observed_disagreement / expected_disagreement)
