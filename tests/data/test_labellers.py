"""Labeller audit: a labeller who flips 30% of labels is flagged; honest ones are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.data.interface import DataValidationError
from bastion.data.labellers import audit_labellers, read_annotations
from bastion.findings import Principle, Severity


def _annotations(seed: int = 0) -> tuple[pd.DataFrame, set[int]]:
    """Five labellers label 300 items (5 classes); 'mallory' flips 30% of hers."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, 300)
    rows = []
    flipped = set()
    for name in ("ann", "bob", "cat", "dan", "mallory"):
        for item, label in enumerate(truth):
            given = int(label)
            if name == "mallory" and rng.random() < 0.3:
                given = int((label + rng.integers(1, 5)) % 5)
                flipped.add(item)
            elif name != "mallory" and rng.random() < 0.03:
                given = int(rng.integers(0, 5))
            rows.append((f"i{item}", name, f"c{given}"))
    return pd.DataFrame(rows, columns=["item", "labeller", "label"]), flipped


def test_flipping_labeller_is_flagged() -> None:
    frame, flipped = _annotations()
    audit = audit_labellers(frame, source="labels.csv")
    flagged = [s.labeller for s in audit.scores if s.flagged]
    assert flagged == ["mallory"]
    mallory = audit.scores[0]
    assert mallory.labeller == "mallory"
    assert mallory.agreement == pytest.approx(0.7, abs=0.06)
    honest = [s.kappa for s in audit.scores[1:]]
    assert min(honest) > 0.9
    findings = {f.rule: f for f in audit.findings()}
    outlier = findings["data.labels.labeller_outlier"]
    assert outlier.severity is Severity.HIGH and outlier.principle is Principle.P2_2
    assert outlier.evidence["labeller"] == "mallory"
    # every item mallory flipped now has conflicting labels listed for review
    conflicted = set(audit.disagreements["item"])
    assert {f"i{i}" for i in flipped} <= conflicted
    assert audit.fleiss_items == 300 and audit.krippendorff_alpha is not None
    assert 0.7 < audit.krippendorff_alpha < 0.9


def test_majority_ties_leave_the_majority_empty() -> None:
    frame = pd.DataFrame({"item": ["x", "x", "y", "y"], "labeller": ["a", "b", "a", "b"],
                          "label": ["p", "q", "p", "p"]})
    audit = audit_labellers(frame)
    assert audit.disagreements.to_dict(orient="records") == [
        {"item": "x", "labels": "a=p; b=q", "majority": ""}]


def test_read_annotations_errors(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("item,who,label\n1,a,x\n")
    with pytest.raises(DataValidationError, match="missing column"):
        read_annotations(path)
    assert read_annotations(path, labeller="who")["labeller"].tolist() == ["a"]
    path.write_text("item,labeller,label\n1,a,\n")
    with pytest.raises(DataValidationError, match="empty field"):
        read_annotations(path)
    with pytest.raises(DataValidationError, match="two labellers"):
        audit_labellers(pd.DataFrame({"item": ["1"], "labeller": ["a"], "label": ["x"]}))
