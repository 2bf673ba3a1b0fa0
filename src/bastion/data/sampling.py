"""Randomised label audits and labelling work plans (NCSC 2.2).

``audit_sample`` draws a stratified random sample for people to check; ``estimate_error_rate``
turns their verdicts into a label error rate with a confidence interval; ``split_work`` assigns
items so that no labeller sees more than a set fraction of the data, with overlap to measure
agreement.

    >>> from bastion.data.sampling import wilson_interval
    >>> [round(x, 4) for x in wilson_interval(5, 100)]
    [0.0215, 0.1118]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import norm

from bastion.data.interface import DataValidationError

__all__ = ["ErrorRateEstimate", "audit_sample", "estimate_error_rate", "split_work",
           "wilson_interval"]

_CORRECT = {"correct", "ok", "yes", "y", "1", "true", "right"}
_WRONG = {"wrong", "incorrect", "error", "no", "n", "0", "false", "mislabelled", "mislabeled"}


def wilson_interval(errors: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (Wilson 1927): sound near 0 and 1, unlike the
    normal approximation, which matters because good datasets have small error rates."""
    if n <= 0:
        raise DataValidationError("a confidence interval needs at least one reviewed item")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = errors / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def audit_sample(
    labels: npt.NDArray[np.generic], size: int, *, seed: int = 0, min_per_class: int = 1
) -> pd.DataFrame:
    """A stratified random sample of rows: each class in proportion to its size (largest
    remainders), at least ``min_per_class`` of each. Columns: row, label, stratum_size, verdict
    (empty, for the reviewer: ``correct`` or ``wrong``)."""
    if size < 1:
        raise DataValidationError("the audit sample needs at least one item")
    text = pd.Series(labels.astype(str))
    counts = text.value_counts().sort_index()
    size = min(size, len(text))
    exact = counts / counts.sum() * size
    quota = np.floor(exact).astype(int)
    remainder = size - int(quota.sum())
    quota.iloc[np.argsort(-(exact - quota).to_numpy(), kind="stable")[:remainder]] += 1
    quota = np.minimum(np.maximum(quota, np.minimum(min_per_class, counts)), counts)
    rng = np.random.default_rng(seed)
    rows = []
    for name, take in quota.items():
        members = np.flatnonzero((text == name).to_numpy())
        picked = np.sort(rng.choice(members, size=int(take), replace=False))
        rows += [(int(r), str(name), int(counts[name])) for r in picked]
    frame = pd.DataFrame(rows, columns=["row", "label", "stratum_size"])
    frame["verdict"] = ""
    return frame.sort_values("row", kind="stable").reset_index(drop=True)


@dataclass(frozen=True)
class ErrorRateEstimate:
    """Estimated label error rate from a reviewed audit sample."""

    reviewed: int
    """Items with a verdict."""
    errors: int
    """Items judged wrongly labelled."""
    rate: float
    """Estimated error rate of the whole dataset (strata weighted by their size)."""
    low: float
    """Lower end of the confidence interval."""
    high: float
    """Upper end of the confidence interval."""
    confidence: float
    """Confidence level of the interval."""
    by_label: dict[str, tuple[int, int]]
    """Per label: (reviewed, errors)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"reviewed": self.reviewed, "errors": self.errors, "rate": self.rate,
                "interval": [self.low, self.high], "confidence": self.confidence,
                "by_label": {k: {"reviewed": r, "errors": e}
                             for k, (r, e) in self.by_label.items()}}


def estimate_error_rate(sample: pd.DataFrame, *, confidence: float = 0.95) -> ErrorRateEstimate:
    """Error rate with a Wilson interval from a sample written by :func:`audit_sample`.

    Strata are weighted by their share of the dataset (``stratum_size``); the interval uses the
    effective sample size of the stratified estimate (Kish), which equals the number reviewed
    when the allocation is proportional.
    """
    missing = {"label", "stratum_size", "verdict"} - set(sample.columns)
    if missing:
        raise DataValidationError(f"the audit sample lacks column(s) {sorted(missing)}",
                                  hint="fill in the file written by 'bastion data audit-sample'")
    verdict = sample["verdict"].fillna("").astype(str).str.strip().str.lower()
    unknown = sorted(set(verdict) - _CORRECT - _WRONG - {""})
    if unknown:
        raise DataValidationError(f"unknown verdict(s) {unknown[:5]}",
                                  hint="write 'correct' or 'wrong' (or leave blank: not reviewed)")
    done = sample.assign(wrong=verdict.isin(_WRONG))[verdict != ""]
    if done.empty:
        raise DataValidationError("no item has a verdict yet",
                                  hint="fill the verdict column with 'correct' or 'wrong'")
    groups = done.groupby(done["label"].astype(str))
    sizes = groups["stratum_size"].first().astype(float)
    reviewed = groups.size().astype(float)
    wrong = groups["wrong"].sum().astype(float)
    weights = sizes / sizes.sum()
    shares = wrong / reviewed
    rate = float((weights * shares).sum())
    fpc = np.clip(1 - reviewed / sizes, 0, 1)
    variance = float((weights**2 * shares * (1 - shares) / reviewed * fpc).sum())
    n = len(done)
    effective = rate * (1 - rate) / variance if variance > 0 else float(n)
    low, high = wilson_interval(rate * effective, effective, confidence)
    by_label = {str(k): (int(reviewed[k]), int(wrong[k])) for k in reviewed.index}
    return ErrorRateEstimate(n, int(done["wrong"].sum()), rate, low, high, confidence,
                             by_label)


def split_work(
    items: int,
    labellers: Sequence[str],
    *,
    max_fraction: float,
    overlap: float = 0.1,
    per_overlap_item: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """Assign ``items`` to ``labellers``: a share ``overlap`` of items goes to
    ``per_overlap_item`` different labellers (to measure agreement), the rest to one; nobody
    gets more than ``max_fraction`` of the items, so no single labeller controls the data.

    Returns columns item, labeller (one row per assignment).
    """
    names = list(dict.fromkeys(labellers))
    if len(names) < max(2, per_overlap_item):
        raise DataValidationError(
            f"{len(names)} labeller(s) cannot give {per_overlap_item} labels to shared items",
            hint="name more labellers")
    if not 0 < max_fraction <= 1 or not 0 <= overlap <= 1:
        raise DataValidationError("max fraction must be in (0, 1] and overlap in [0, 1]")
    shared = math.ceil(overlap * items)
    cap = math.floor(max_fraction * items)
    needed = items + shared * (per_overlap_item - 1)
    if cap * len(names) < needed:
        raise DataValidationError(
            f"{len(names)} labellers with at most {cap} items each cannot cover {needed} "
            "assignments",
            hint=f"raise the fraction to at least {needed / (len(names) * items):.3f} "
                 "or add labellers")
    rng = np.random.default_rng(seed)
    order = rng.permutation(items)
    load = np.zeros(len(names), dtype=np.int64)
    item_ids: list[npt.NDArray[np.int64]] = []
    who: list[npt.NDArray[np.int64]] = []
    for item in order[:shared]:
        # least loaded first, random among equals: spreads pairs across all labellers
        chosen = np.lexsort((rng.random(len(names)), load))[:per_overlap_item]
        load[chosen] += 1
        item_ids.append(np.full(per_overlap_item, item))
        who.append(chosen)
    single = order[shared:]
    quota = _water_fill(load, cap, len(single))
    owners = rng.permutation(np.repeat(np.arange(len(names)), quota))
    item_ids.append(single)
    who.append(owners)
    if shared:
        shared_load = np.bincount(np.concatenate(who[:-1]), minlength=len(names))
        if (shared_load == 0).any():
            lonely = [names[i] for i in np.flatnonzero(shared_load == 0)]
            raise DataValidationError(
                f"labeller(s) {lonely} share no items with anyone: agreement is unmeasurable",
                hint="raise the overlap")
    frame = pd.DataFrame({"item": np.concatenate(item_ids),
                          "labeller": np.asarray(names)[np.concatenate(who)]})
    return frame.sort_values(["item", "labeller"], kind="stable").reset_index(drop=True)


def _water_fill(load: npt.NDArray[np.int64], cap: int, count: int) -> npt.NDArray[np.int64]:
    """How many more items each labeller takes so loads end as even as possible, ≤ ``cap``."""
    level = int(load.min())
    while np.minimum(np.maximum(level - load, 0), cap - load).sum() < count:
        level += 1
    quota = np.minimum(np.maximum(level - load, 0), cap - load)
    excess = int(quota.sum()) - count
    at_level = np.flatnonzero((load + quota == level) & (quota > 0))
    quota[at_level[:excess]] -= 1
    return quota
