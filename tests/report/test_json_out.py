from __future__ import annotations

from bastion.findings import Finding, Principle, Severity
from bastion.report.json_out import findings_document


def test_document_sorts_worst_first_and_counts_by_severity() -> None:
    low = Finding(rule="a", severity=Severity.LOW, title="l", principle=Principle.P2_2)
    crit = Finding(rule="b", severity=Severity.CRITICAL, title="c", principle=Principle.P2_2)
    doc = findings_document([low, crit, low], tool="scan", summary={"files": 2})
    assert [f["severity"] for f in doc["findings"]] == ["critical", "low", "low"]
    assert doc["summary"] == {
        "files": 2,
        "by_severity": {"critical": 1, "high": 0, "medium": 0, "low": 2, "info": 0},
    }
    assert doc["tool"] == "bastion scan"
