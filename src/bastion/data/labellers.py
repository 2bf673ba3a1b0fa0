"""Label audits with several labellers (NCSC 2.2: "whoever labels your data has direct influence
on your model's behaviour").

Each labeller is compared with the consensus of the *other* labellers on the items they share
(leave-one-out majority, so a prolific labeller cannot agree with themselves). Labellers far
below their peers are flagged: a careless labeller and an insider flipping labels look the same
here, and both need a human to look.

    >>> from bastion.data.labellers import audit_labellers, read_annotations
    >>> audit = audit_labellers(read_annotations("labels.csv"))     # doctest: +SKIP
    >>> [s.labeller for s in audit.scores if s.flagged]             # doctest: +SKIP
    ['mallory']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bastion import atlas
from bastion.data.agreement import cohen_kappa, fleiss_kappa, krippendorff_alpha
from bastion.data.interface import DataFormatError, DataValidationError
from bastion.findings import Finding, Location, Principle, Severity

__all__ = ["LabelAudit", "LabellerScore", "audit_labellers", "read_annotations"]

_EXAMPLES = 20
_ALPHA_TENTATIVE = 0.667
"""Krippendorff's lowest alpha from which tentative conclusions are acceptable."""


def read_annotations(
    path: str | Path, *, item: str = "item", labeller: str = "labeller", label: str = "label"
) -> pd.DataFrame:
    """Read a CSV of one row per (item, labeller, label) into columns item, labeller, label."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in (item, labeller, label) if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{path}: missing column(s) {missing}",
            hint="one row per annotation with columns item, labeller, label (or name the "
                 "columns that hold them)",
        )
    out = frame[[item, labeller, label]].set_axis(["item", "labeller", "label"], axis=1)
    blank = (out == "").any(axis=1)
    if blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0])
        raise DataValidationError(f"{path}: {int(blank.sum())} row(s) with an empty field, "
                                  f"the first is data row {row}",
                                  hint="every annotation needs an item, a labeller and a label")
    return out


@dataclass(frozen=True)
class LabellerScore:
    """How one labeller agrees with the others."""

    labeller: str
    """Labeller's name."""
    items: int
    """Items they labelled."""
    compared: int
    """Items where the other labellers reached a majority to compare with."""
    agreement: float
    """Fraction of compared items where they match the others' majority."""
    kappa: float
    """Cohen's kappa against the others' majority."""
    flagged: bool
    """Far from consensus: below ``min_kappa`` or ``margin`` below the median labeller."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"labeller": self.labeller, "items": self.items, "compared": self.compared,
                "agreement": self.agreement, "kappa": self.kappa, "flagged": self.flagged}


@dataclass(frozen=True)
class LabelAudit:
    """The result of :func:`audit_labellers`."""

    source: str
    """Where the annotations came from."""
    items: int
    """Distinct items."""
    fleiss_kappa: float | None
    """Fleiss' kappa over the items with the most common number of ratings (≥ 2)."""
    fleiss_items: int
    """How many items Fleiss' kappa used."""
    krippendorff_alpha: float | None
    """Krippendorff's alpha (nominal) over every item with two or more ratings."""
    scores: tuple[LabellerScore, ...]
    """Per labeller, worst first."""
    disagreements: pd.DataFrame
    """Items whose labels differ: item, labels (``labeller=label; …``), majority (or empty)."""

    def findings(self) -> list[Finding]:
        """Flagged labellers, low overall agreement, and the items to review."""
        where = Location(path=self.source)
        median = float(np.median([s.kappa for s in self.scores])) if self.scores else 0.0
        out = [
            Finding(
                rule="data.labels.labeller_outlier", severity=Severity.HIGH,
                title=f"labeller {s.labeller!r} is far from consensus "
                      f"(kappa {s.kappa:.2f}, median {median:.2f})",
                principle=Principle.P2_2, location=where, techniques=(atlas.POISON_TRAINING_DATA,),
                detail="systematic disagreement is either an error or deliberate label "
                       "flipping by an insider",
                remediation="review this labeller's items; re-label them with someone else",
                evidence=s.to_dict())
            for s in self.scores if s.flagged
        ]
        if self.krippendorff_alpha is not None and self.krippendorff_alpha < _ALPHA_TENTATIVE:
            out.append(Finding(
                rule="data.labels.low_agreement", severity=Severity.MEDIUM,
                title=f"labellers agree poorly overall (Krippendorff's alpha "
                      f"{self.krippendorff_alpha:.2f} < {_ALPHA_TENTATIVE})",
                principle=Principle.P2_2, location=where,
                remediation="clarify the labelling guide; train labellers; adjudicate",
                evidence={"krippendorff_alpha": self.krippendorff_alpha,
                          "fleiss_kappa": self.fleiss_kappa}))
        if len(self.disagreements):
            out.append(Finding(
                rule="data.labels.disagreement", severity=Severity.LOW,
                title=f"{len(self.disagreements)} item(s) have conflicting labels",
                principle=Principle.P2_2, location=where,
                remediation="adjudicate the listed items",
                evidence={"count": len(self.disagreements),
                          "items": self.disagreements["item"].head(_EXAMPLES).tolist()}))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"source": self.source, "items": self.items, "fleiss_kappa": self.fleiss_kappa,
                "fleiss_items": self.fleiss_items,
                "krippendorff_alpha": self.krippendorff_alpha,
                "labellers": [s.to_dict() for s in self.scores],
                "disagreements": self.disagreements.to_dict(orient="records")}


def _majority(counts: np.ndarray) -> np.ndarray:
    """Index of the unique most frequent category per row, or -1 on a tie or no votes."""
    top = counts.max(axis=1)
    winners = (counts == top[:, None]).sum(axis=1)
    return np.where((top > 0) & (winners == 1), counts.argmax(axis=1), -1)


def audit_labellers(
    annotations: pd.DataFrame,
    *,
    source: str = "annotations",
    min_kappa: float = 0.6,
    margin: float = 0.2,
) -> LabelAudit:
    """Agreement of every labeller with the others, and the items they disagree on.

    Args:
        annotations: columns item, labeller, label (see :func:`read_annotations`).
        source: where they came from, for findings.
        min_kappa: a labeller below this kappa is flagged.
        margin: a labeller this far below the median labeller's kappa is flagged.
    """
    frame = annotations.astype(str).drop_duplicates(["item", "labeller"], keep="last")
    labellers = sorted(frame["labeller"].unique())
    if len(labellers) < 2:
        raise DataValidationError("a label audit needs at least two labellers")
    wide = frame.pivot(index="item", columns="labeller", values="label")
    categories = np.unique(frame["label"].to_numpy())
    code_of = dict(zip(categories, range(len(categories)), strict=True))
    coded = wide.apply(lambda col: col.map(code_of)).to_numpy(np.float64)  # NaN = not labelled
    counts = np.zeros((len(wide), len(categories)), dtype=np.int64)
    for j in range(coded.shape[1]):
        has = ~np.isnan(coded[:, j])
        np.add.at(counts, (np.flatnonzero(has), coded[has, j].astype(np.int64)), 1)

    scores = []
    for j, name in enumerate(wide.columns):
        has = ~np.isnan(coded[:, j])
        own = coded[has, j].astype(np.int64)
        others = counts[has].copy()
        others[np.arange(len(own)), own] -= 1
        majority = _majority(others)
        ok = majority >= 0
        if not ok.any():
            scores.append(LabellerScore(str(name), int(has.sum()), 0, float("nan"),
                                        float("nan"), False))
            continue
        agreement = float(np.mean(own[ok] == majority[ok]))
        kappa = cohen_kappa(own[ok].tolist(), majority[ok].tolist())
        scores.append(LabellerScore(str(name), int(has.sum()), int(ok.sum()), agreement,
                                    kappa, False))
    kappas = [s.kappa for s in scores if not np.isnan(s.kappa)]
    median = float(np.median(kappas)) if kappas else float("nan")
    scores = [
        LabellerScore(s.labeller, s.items, s.compared, s.agreement, s.kappa,
                      bool(s.compared and (s.kappa < min_kappa or s.kappa < median - margin)))
        for s in scores
    ]
    scores.sort(key=lambda s: (np.nan_to_num(s.kappa, nan=2.0), s.labeller))

    per_item = counts.sum(axis=1)
    rated = per_item[per_item >= 2]
    fleiss, fleiss_items = None, 0
    if len(rated):
        modal = int(np.bincount(rated).argmax())
        chosen = counts[per_item == modal]
        fleiss, fleiss_items = fleiss_kappa(chosen), len(chosen)
    alpha = krippendorff_alpha(wide.T) if len(rated) else None

    conflicted = (counts > 0).sum(axis=1) > 1
    overall = _majority(counts)
    rows = []
    for i in np.flatnonzero(conflicted):
        given = "; ".join(f"{lab}={wide.iat[i, j]}" for j, lab in enumerate(wide.columns)
                          if not pd.isna(wide.iat[i, j]))
        rows.append((str(wide.index[i]), given,
                     str(categories[overall[i]]) if overall[i] >= 0 else ""))
    disagreements = pd.DataFrame(rows, columns=["item", "labels", "majority"])
    return LabelAudit(source, len(wide), fleiss, fleiss_items, alpha, tuple(scores),
                      disagreements)
