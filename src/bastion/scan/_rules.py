"""Building scanner findings: NCSC principle 2.2 and the ATLAS techniques filled in once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from bastion import atlas
from bastion.findings import Finding, Location, Principle, Severity

__all__ = ["CODE_EXECUTION", "SUPPLY_CHAIN", "finding"]

SUPPLY_CHAIN: Final = (atlas.SUPPLY_CHAIN_MODEL,)
"""ML Supply Chain Compromise: Model."""
CODE_EXECUTION: Final = (atlas.SUPPLY_CHAIN_MODEL, atlas.UNSAFE_ARTIFACTS)
"""…and User Execution: Unsafe AI Artifacts (the artifact runs code when loaded)."""

_REMEDIATE_UNREAD: Final = (
    "Do not load this file. Obtain it again from a trusted source, or convert it to a format "
    "that cannot carry code (safetensors, ONNX) on an isolated machine."
)


def finding(
    rule: str,
    severity: Severity,
    title: str,
    location: Location,
    *,
    detail: str = "",
    remediation: str = _REMEDIATE_UNREAD,
    evidence: Mapping[str, object] | None = None,
    techniques: tuple[str, ...] = SUPPLY_CHAIN,
) -> Finding:
    """A scanner finding under NCSC 2.2 (supply chain)."""
    return Finding(
        rule=rule,
        severity=severity,
        title=title,
        principle=Principle.P2_2,
        detail=detail,
        location=location,
        techniques=techniques,
        remediation=remediation,
        evidence=dict(evidence or {}),
    )
