"""Helpers for the format scanner tests: run one scanner over a file, collect its findings."""

from __future__ import annotations

from pathlib import Path

from bastion.findings import Finding, Location, Severity
from bastion.scan.interface import FormatScanner, Member, ScanLimits, Source


def source_for(path: Path) -> Source:
    """A :class:`Source` for a file on disk."""
    return Source(Location(str(path)), path.stat().st_size, lambda: path.open("rb"))


def scan_file(scanner: FormatScanner, path: Path) -> tuple[list[Finding], list[Member]]:
    """Every finding and member the scanner yields for ``path``."""
    findings: list[Finding] = []
    members: list[Member] = []
    for item in scanner.scan(source_for(path), ScanLimits()):
        (members if isinstance(item, Member) else findings).append(item)  # type: ignore[arg-type]
    return findings, members


def rules(findings: list[Finding], at_least: Severity = Severity.MEDIUM) -> set[str]:
    """The rules reported at ``at_least`` or worse."""
    return {f.rule for f in findings if f.severity >= at_least}
