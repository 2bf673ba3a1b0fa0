"""What registration computes from the content itself and records in the card."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np

from bastion.catalog.service import Catalog
from bastion.store.workspace import Workspace


def test_dataset_metrics_come_from_the_data(workspace: Workspace, tmp_path: Path) -> None:
    table = tmp_path / "rows.csv"
    table.write_text("a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n")
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    np.save(arrays / "X.npy", np.zeros((5, 7)))
    np.save(arrays / "y.npy", np.array([0, 1, 1, 1, 0]))
    catalog = Catalog(workspace)

    csv_card = catalog.add_dataset("rows", table).card
    assert csv_card["metrics"] == {"rows": 3, "features": 2, "label_counts": {"cat": 2, "dog": 1}}
    npy_card = catalog.add_dataset("arrays", arrays).card
    assert npy_card["metrics"] == {"rows": 5, "features": 7, "label_counts": {"0": 2, "1": 3}}
    (entry,) = workspace.audit.entries(subject="rows@1", action="dataset.add")
    assert entry.details["computed"] == "metrics computed"


def test_data_bastion_cannot_read_is_registered_without_metrics(
    workspace: Workspace, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("free text is a dataset too\n")
    info = Catalog(workspace).add_dataset("corpus", corpus)
    assert "metrics" not in info.card
    (entry,) = workspace.audit.entries(subject="corpus@1", action="dataset.add")
    assert entry.details["computed"].startswith("metrics not computed: ")


def test_model_card_records_the_environment(workspace: Workspace, tmp_path: Path) -> None:
    weights = tmp_path / "w.npy"
    np.save(weights, np.ones(3))
    card = Catalog(workspace).add_model("m", weights).card
    libraries = {lib["name"].lower(): lib["version"] for lib in card["environment"]}
    assert libraries["numpy"] == importlib.metadata.version("numpy")
    assert libraries["sqlalchemy"] == importlib.metadata.version("sqlalchemy")
