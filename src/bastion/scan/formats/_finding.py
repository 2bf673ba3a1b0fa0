"""Building findings for the non-pickle format scanners: one place for location, principle, ATLAS.

Every format finding is evidence for NCSC principle 2.2 (supply chain) and names the ATLAS
techniques it bears on: a poisoned model in the supply chain (AML.T0010.003) and, where loading it
would run code, unsafe AI artifacts executed by the user (AML.T0011.000).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from bastion.findings import Finding, Location, Principle, Severity
from bastion.scan.interface import Source

__all__ = ["CODE_EXECUTION", "SUPPLY_CHAIN", "finding"]

SUPPLY_CHAIN: Final = ("AML.T0010.003",)
"""A tampered or malformed model artifact."""
CODE_EXECUTION: Final = ("AML.T0010.003", "AML.T0011.000")
"""An artifact that runs code, reads or writes files when it is loaded."""


def finding(
    source: Source,
    rule: str,
    severity: Severity,
    title: str,
    *,
    detail: str,
    remediation: str,
    offset: int | None = None,
    evidence: Mapping[str, Any] | None = None,
    techniques: tuple[str, ...] = SUPPLY_CHAIN,
) -> Finding:
    """A finding located in ``source`` (at ``offset`` when known), for principle 2.2."""
    return Finding(
        rule=rule,
        severity=severity,
        title=title,
        principle=Principle.P2_2,
        detail=detail,
        location=Location(
            path=source.location.path, member=source.location.member, offset=offset
        ),
        techniques=techniques,
        remediation=remediation,
        evidence=evidence or {},
    )
