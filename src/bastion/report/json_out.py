"""Findings as a JSON document (schema in ``docs/findings.md``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bastion import __version__
from bastion.findings import Finding, Severity
from bastion.report._json import dumps

__all__ = ["dumps", "findings_document"]


def findings_document(
    findings: Iterable[Finding], *, tool: str, summary: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-ready document: tool, version, summary counts by severity, then the findings."""
    items = sorted(findings, key=lambda f: (-f.severity.rank, f.rule))
    counts = {s.value: 0 for s in reversed(Severity)}
    for finding in items:
        counts[finding.severity.value] += 1
    return {
        "tool": f"bastion {tool}",
        "version": __version__,
        "summary": {**(summary or {}), "by_severity": counts},
        "findings": [f.to_dict() for f in items],
    }
