"""Catalog fixtures: a catalog on SQLite or PostgreSQL, and small real artifacts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bastion.catalog.service import Catalog
from bastion.findings import Finding, Location, Principle, Severity
from bastion.scan.interface import ScanReport
from bastion.store.workspace import Workspace


class StubScanner:
    """Stands in for the scanner where a test is about the catalog's gate, not the scanner:
    returns the findings it was told to, for the path it is given."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.calls: list[Path] = []

    def __call__(self, path: Path) -> ScanReport:
        self.calls.append(path)
        return ScanReport(findings=tuple(self.findings))

    def flag(self, severity: Severity, rule: str = "pickle.global.unsafe") -> None:
        self.findings.append(
            Finding(rule=rule, severity=severity, title=f"{rule} found",
                    principle=Principle.P2_2, location=Location(path="model.pkl"))
        )


@pytest.fixture
def scanner() -> StubScanner:
    return StubScanner()


@pytest.fixture
def catalog(workspace: Workspace, scanner: StubScanner) -> Catalog:
    return Catalog(workspace, scanner=scanner)


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[[str, int], Path]:
    """A directory holding a real NumPy weights file and a config, distinct per ``seed``."""

    def build(name: str = "model", seed: int = 0) -> Path:
        directory = tmp_path / f"{name}-{seed}"
        (directory / "weights").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        np.save(directory / "weights" / "layer0.npy", rng.normal(size=(64, 32)).astype("float32"))
        (directory / "config.json").write_text(f'{{"seed": {seed}, "layers": 1}}')
        return directory

    return build


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[[int], Path]:
    """A real CSV file of a small labelled dataset."""

    def build(seed: int = 0) -> Path:
        path = tmp_path / f"train-{seed}.csv"
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, 100, size=(50, 3))
        path.write_text("a,b,label\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
        return path

    return build

