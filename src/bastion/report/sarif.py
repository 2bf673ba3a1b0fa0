"""Findings as SARIF 2.1.0, the format code-scanning dashboards ingest.

Severity maps to SARIF ``level`` (critical/high → error, medium → warning, low/info → note) and
to GitHub's ``security-severity`` score on each rule. An archive member and the NCSC principle
travel in ``properties``; byte offsets become ``region.byteOffset``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from bastion import __version__
from bastion.findings import Finding, Severity

__all__ = ["SARIF_SCHEMA_URI", "sarif_document"]

SARIF_SCHEMA_URI: Final = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL: Final = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
_SCORE: Final = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def sarif_document(findings: Iterable[Finding], *, tool: str) -> dict[str, Any]:
    """One SARIF run holding every finding, with one rule per distinct rule id."""
    items = list(findings)
    rules: dict[str, dict[str, Any]] = {}
    for finding in items:
        rule = rules.setdefault(finding.rule, _rule(finding))
        if float(_SCORE[finding.severity]) > float(rule["properties"]["security-severity"]):
            rule["properties"]["security-severity"] = _SCORE[finding.severity]
    index = {rule_id: i for i, rule_id in enumerate(rules)}
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion",
                        "fullName": f"Bastion {tool}",
                        "version": __version__,
                        "informationUri": "https://github.com/bastion-ml/bastion",
                        "rules": list(rules.values()),
                    }
                },
                "results": [_result(f, index[f.rule]) for f in items],
            }
        ],
    }


def _rule(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.rule,
        "shortDescription": {"text": finding.title},
        "help": {"text": finding.remediation or finding.title},
        "properties": {
            "security-severity": _SCORE[finding.severity],
            "tags": ["security", f"NCSC-{finding.principle.number}", *finding.techniques],
        },
    }


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    message = finding.title + (f": {finding.detail}" if finding.detail else "")
    result: dict[str, Any] = {
        "ruleId": finding.rule,
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.severity],
        "message": {"text": message},
        "properties": {
            "severity": finding.severity.value,
            "principle": finding.principle.number,
            "atlas": list(finding.techniques),
            "evidence": dict(finding.evidence),
        },
    }
    if finding.location is not None:
        physical: dict[str, Any] = {"artifactLocation": {"uri": finding.location.path}}
        if finding.location.offset is not None:
            physical["region"] = {"byteOffset": finding.location.offset}
        location: dict[str, Any] = {"physicalLocation": physical}
        if finding.location.member:
            location["logicalLocations"] = [
                {"fullyQualifiedName": finding.location.member, "kind": "member"}
            ]
            result["properties"]["member"] = finding.location.member
        result["locations"] = [location]
    if finding.remediation:
        result["properties"]["remediation"] = finding.remediation
    return result
