"""The findings table stays readable at any console width."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bastion.findings import Finding, Location, Principle, Severity
from bastion.report.table import WIDE, print_findings

FINDING = Finding(
    rule="pickle.global.dangerous", severity=Severity.CRITICAL,
    title="pickle #4 imports and calls posix.system", principle=Principle.from_number("2.2"),
    detail="GLOBAL makes the unpickler import posix.system.",
    location=Location("/models/checkpoints/evil_legacy.pt", None, 320),
    techniques=("AML.T0010.003", "AML.T0011.000"),
)


def render(width: int, findings: list[Finding]) -> str:
    out = io.StringIO()
    print_findings(Console(file=out, width=width, color_system=None), findings, title="scan")
    return out.getvalue()


def cells(text: str) -> list[str]:
    """Each column's text, its wrapped and folded lines joined (spaces dropped)."""
    columns: list[str] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        for i, cell in enumerate(line.strip("│").split("│")):
            if i == len(columns):
                columns.append("")
            columns[i] += "".join(cell.split())
    return columns


@pytest.mark.parametrize("width", [60, 80, 100, WIDE - 1, WIDE, 200])
def test_every_part_of_a_finding_is_shown(width: int) -> None:
    text = render(width, [FINDING])
    shown = cells(text)
    for part in ("critical", "pickle.global.dangerous", "/models/checkpoints/evil_legacy.pt@320",
                 "pickle#4importsandcallsposix.system", "2.2", "AML.T0010.003",
                 "AML.T0011.000"):
        assert any(part in cell for cell in shown), (width, part, text)
    assert max(len(line) for line in text.splitlines()) <= width


def test_wide_consoles_get_a_column_per_id() -> None:
    header = next(line for line in render(WIDE, [FINDING]).splitlines() if "severity" in line)
    assert "rule" in header and "ATLAS" in header
    header = next(line for line in render(80, [FINDING]).splitlines() if "severity" in line)
    assert "rule" not in header and "where" in header and "what" in header


def test_no_findings_says_so() -> None:
    assert render(80, []).strip() == "scan: no findings"
