"""The entry points DESIGN.md promises: ``bastion.scan(path)``, ``bastion.Catalog``,
``bastion.Finding``…, each imported only when first used."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bastion
from bastion.store.workspace import Workspace


def test_bastion_scan_is_callable_and_still_the_package(tmp_path: Path, canary: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(canary), "w"))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Payload()))
    report = bastion.scan(tmp_path / "evil.pkl")
    assert not report.clean and report.findings[0].severity >= bastion.Severity.HIGH
    assert bastion.scan.scan is not None and bastion.scan.Policy.default()  # the package too
    assert isinstance(report, bastion.ScanReport)
    assert not canary.exists()


def test_bastion_catalog_registers_with_the_standard_scanner(
    workspace: Workspace, tmp_path: Path
) -> None:
    np.save(tmp_path / "w.npy", np.arange(8.0))
    info = bastion.Catalog(workspace).add_model("m", tmp_path / "w.npy")
    assert info.summary.ref == "m@1"
    assert [f["name"] for f in info.card["environment"] if f["name"] == "numpy"] == ["numpy"]


def test_importing_bastion_loads_nothing_else() -> None:
    code = ("import sys, bastion; print(bastion.__version__, "
            "sorted(m for m in sys.modules if m.startswith('bastion') or m == 'sqlalchemy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split(" ", 1)
    assert out[0] == bastion.__version__
    assert out[1].strip() == "['bastion']"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Catalogue'"):
        _ = bastion.Catalogue  # type: ignore[attr-defined]
