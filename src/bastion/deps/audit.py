"""The audit: packages and an advisory source in, findings out (NCSC principle 2.3).

Every package ends in exactly one of three states, so nothing passes silently:

* vulnerable: one ``deps.vulnerable`` finding per advisory, with its aliases, severity and the
  versions that fix it;
* unresolved: no exact, PEP 440 version to check (``deps.unresolved``, high: fail closed);
* clean: audited against the source, no advisory applies.

One more finding states the database's age in every report (``deps.db.age``, info), or its
staleness when older than ``max_age_days`` (``deps.db.stale``, medium).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from packaging.version import InvalidVersion, Version

from bastion import atlas
from bastion.deps import _osv
from bastion.deps.interface import AdvisorySource, DatabaseInfo, Package, Record
from bastion.findings import Finding, Location, Principle, Severity
from bastion.store.workspace import Workspace

__all__ = ["ATLAS_SUPPLY_CHAIN", "DEFAULT_MAX_AGE_DAYS", "DepsReport", "audit"]

ATLAS_SUPPLY_CHAIN: Final = atlas.SUPPLY_CHAIN_COMPROMISE
"""MITRE ATLAS "ML Supply Chain Compromise"."""
DEFAULT_MAX_AGE_DAYS: Final = 7.0


@dataclass(frozen=True, slots=True)
class DepsReport:
    """What one audit found."""

    findings: Sequence[Finding]
    """Vulnerable and unresolved packages, and the database's age."""
    packages: Sequence[Package]
    """Every package considered."""
    database: DatabaseInfo
    """The advisory source and its age."""
    audited_at: datetime
    """When the audit ran (the age is measured from here)."""
    elapsed_s: float = 0.0
    """Wall-clock time of the lookup and matching."""
    vulnerable: int = field(default=0)
    """How many packages have at least one advisory."""

    def summary(self) -> dict[str, Any]:
        """Counts and the database's age, for the JSON report."""
        unresolved = sum(1 for f in self.findings if f.rule == "deps.unresolved")
        return {
            "packages": len(self.packages),
            "vulnerable_packages": self.vulnerable,
            "unresolved_packages": unresolved,
            "database": self.database.to_dict(self.audited_at),
            "elapsed_s": round(self.elapsed_s, 4),
        }


def _unresolved(package: Package, reason: str) -> Finding:
    return Finding(
        rule="deps.unresolved",
        severity=Severity.HIGH,
        title=f"{package.name} cannot be audited: {reason}",
        principle=Principle.P2_3,
        detail="Without one exact version Bastion cannot tell whether a known vulnerability "
        "applies, so the package is reported rather than passed.",
        location=Location(path=package.source, member=package.name),
        techniques=(ATLAS_SUPPLY_CHAIN,),
        remediation="Pin it with '==' (e.g. generate a lock with pip-compile or uv) or audit the "
        "installed environment instead.",
        evidence={"package": package.name, "reason": reason},
    )


def _vulnerable(package: Package, version: str, record: Record) -> Finding:
    key = package.key
    current = Version(version)
    fixed = _osv.fixed_versions(record, key)
    newer = [v for v in fixed if _after(v, current)]
    last = _osv.last_affected(record, key)
    aliases = _osv.aliases(record)
    severity, basis, score = _osv.severity(record, key)
    ids = f"{record.id} ({', '.join(aliases)})" if aliases else record.id
    if newer:
        remediation = f"Upgrade {package.name} to {newer[0]} or later."
    elif last:
        remediation = (
            f"No fixed release is recorded; {last[-1]} is the last affected version. "
            "Upgrade past it or remove the package."
        )
    else:
        remediation = "No fixed release is recorded: remove or replace the package."
    return Finding(
        rule="deps.vulnerable",
        severity=severity,
        title=f"{package.name} {version} is affected by {ids}",
        principle=Principle.P2_3,
        detail=_osv.summary(record),
        location=Location(path=package.source, member=f"{package.name}=={version}"),
        techniques=(ATLAS_SUPPLY_CHAIN,),
        remediation=remediation,
        evidence={
            "package": package.name,
            "version": version,
            "advisory": record.id,
            "aliases": aliases,
            "fixed_versions": fixed,
            "suggested_version": newer[0] if newer else None,
            "last_affected": last,
            "severity_basis": basis,
            "cvss_score": score,
            "modified": record.modified.isoformat(),
        },
    )


def _after(candidate: str, current: Version) -> bool:
    try:
        return Version(candidate) > current
    except InvalidVersion:
        return False


def _age(info: DatabaseInfo, now: datetime, max_age_days: float) -> Finding:
    age = info.age_days(now)
    location = Location(path=info.location)
    evidence = {**info.to_dict(now), "max_age_days": max_age_days}
    if age is None:
        return Finding(
            rule="deps.db.age",
            severity=Severity.INFO,
            title=f"advisories from the live OSV API at {info.location}",
            principle=Principle.P2_3,
            location=location,
            evidence=evidence,
        )
    newest = info.newest_modified.date().isoformat() if info.newest_modified else "?"
    imported = info.imported_at.isoformat(timespec="seconds") if info.imported_at else "?"
    title = (
        f"OSV database: {info.records} advisories, newest from {newest} ({age:.0f} days old), "
        f"imported {imported}"
    )
    if age > max_age_days:
        return Finding(
            rule="deps.db.stale",
            severity=Severity.MEDIUM,
            title=title,
            principle=Principle.P2_3,
            detail=f"Older than {max_age_days:g} days: vulnerabilities published since are unknown "
            "to this audit.",
            location=location,
            remediation="Import a fresh OSV export with 'bastion deps db import PATH'.",
            evidence=evidence,
        )
    return Finding(
        rule="deps.db.age",
        severity=Severity.INFO,
        title=title,
        principle=Principle.P2_3,
        location=location,
        evidence=evidence,
    )


def audit(
    packages: Sequence[Package],
    source: AdvisorySource,
    *,
    max_age_days: float = DEFAULT_MAX_AGE_DAYS,
    now: datetime | None = None,
    workspace: Workspace | None = None,
) -> DepsReport:
    """Audit ``packages`` against ``source``; with a ``workspace``, the audit is recorded in its
    audit log (``deps.audit``, with the report's summary).

    Steps: 1. report each package without an exact PEP 440 version; 2. ask the source which
    records affect the rest; 3. one finding per (package, advisory); 4. state the database's
    age; 5. record that the audit ran.
    """
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    findings: list[Finding] = []
    # 1. Unresolvable packages are findings, never silent passes.
    checkable = []
    for package in packages:
        if package.version is None:
            findings.append(_unresolved(package, package.reason or "no version"))
            continue
        try:
            Version(package.version)
        except InvalidVersion:
            findings.append(_unresolved(package, f"version {package.version!r} is not PEP 440"))
            continue
        checkable.append(package)
    # 2-3. Look up and match.
    affecting = source.affecting(checkable)
    for package, records in affecting.items():
        version = package.version or ""  # every package asked about has one (step 1)
        findings += [_vulnerable(package, version, record) for record in records]
    # 4. The age of what we know.
    info = source.info()
    findings.append(_age(info, now, max_age_days))
    report = DepsReport(
        findings=findings,
        packages=list(packages),
        database=info,
        audited_at=now,
        elapsed_s=time.perf_counter() - started,
        vulnerable=len(affecting),
    )
    if workspace is not None:  # 5.
        workspace.record("deps.audit", info.location, **report.summary())
    return report
