"""The scanner corpus, written once per session by the real libraries (see ``corpus.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.scan.corpus import Written, write_corpus

from bastion.scan import ScanReport, scan


@dataclass(frozen=True)
class ScannedCorpus:
    written: list[Written]
    report: ScanReport
    canary: Path


@pytest.fixture(scope="session")
def scanned_corpus(tmp_path_factory: pytest.TempPathFactory) -> ScannedCorpus:
    """Every benign and malicious fixture, scanned in one run (in parallel)."""
    root = tmp_path_factory.mktemp("corpus")
    canary = root / "CANARY-was-executed"
    written = write_corpus(root / "files", canary)
    report = scan(root / "files", workers=2, digest=True)  # a process pool
    return ScannedCorpus(written, report, canary)
