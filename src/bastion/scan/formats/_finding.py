"""Findings located in a :class:`Source`, for the non-pickle format scanners.

A thin layer over ``scan/_rules.py`` (principle 2.2, ATLAS techniques): these scanners know a
source and an offset, not a ready-made :class:`Location`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.findings import Finding, Location, Severity
from bastion.scan._rules import CODE_EXECUTION, SUPPLY_CHAIN
from bastion.scan._rules import finding as _rule_finding
from bastion.scan.interface import Source

__all__ = ["CODE_EXECUTION", "SUPPLY_CHAIN", "finding"]


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
    """A finding located in ``source`` (at ``offset`` when known)."""
    location = Location(path=source.location.path, member=source.location.member, offset=offset)
    return _rule_finding(rule, severity, title, location, detail=detail,
                         remediation=remediation, evidence=evidence, techniques=techniques)
