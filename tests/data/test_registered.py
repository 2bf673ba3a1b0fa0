"""Registered dataset versions (NAME@VER) load through the catalog: fetched, verified, audited."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.catalog.service import Catalog
from bastion.cli.app import main
from bastion.data.loaders import load_dataset
from bastion.store.workspace import Workspace


def test_registered_version_loads_by_reference(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    frame = pd.DataFrame({"a": np.arange(30.0), "label": ["x", "y", "z"] * 10})
    frame.to_csv(source / "train.csv", index=False)
    catalog = Catalog(workspace)
    catalog.add_dataset("toy", source)
    ds = load_dataset("toy@1", fetch=catalog.get)
    assert ds.source == "toy@1" and len(ds) == 30 and ds.classes == ("x", "y", "z")
    reads = [e for e in workspace.audit.entries(subject="toy@1") if e.action == "dataset.read"]
    assert len(reads) == 1

    monkeypatch.chdir(tmp_path / "project")
    assert main(["data", "profile", "toy@1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["label_counts"] == {"x": 10, "y": 10, "z": 10}
