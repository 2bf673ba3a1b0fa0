"""Dependency audit against an OSV database, offline by design (NCSC principle 2.3).

Import advisories once (a directory of OSV records such as the PyPA advisory database, or an OSV
``all.zip`` export), then audit requirements, lockfiles and installed environments without the
network::

    from pathlib import Path
    from bastion import deps

    deps.import_database(Path("advisory-database/vulns"), Path("osv.sqlite"))
    index = deps.LocalIndex.open(Path("osv.sqlite"))
    report = deps.audit(deps.from_requirements(Path("requirements.txt")), index)
    for finding in report.findings:
        print(finding.severity, finding.title)

Modules: ``interface`` (Package, Record, DatabaseInfo, AdvisorySource), ``database`` (the local
SQLite index), ``api`` (an OSV-compatible HTTP API), ``resolve`` (what to audit), ``audit``
(packages → findings). Bills of materials are the catalog's (``bastion.catalog.bom``).
"""

from __future__ import annotations

from bastion.deps.api import OsvApi
from bastion.deps.audit import ATLAS_SUPPLY_CHAIN, DEFAULT_MAX_AGE_DAYS, DepsReport, audit
from bastion.deps.database import LocalIndex, import_database, index_path
from bastion.deps.interface import AdvisorySource, DatabaseInfo, DepsError, Package, Record
from bastion.deps.resolve import (
    collect,
    current_environment,
    from_environment,
    from_lockfile,
    from_pyproject,
    from_requirement,
    from_requirements,
    from_site_packages,
)

__all__ = [
    "ATLAS_SUPPLY_CHAIN",
    "DEFAULT_MAX_AGE_DAYS",
    "AdvisorySource",
    "DatabaseInfo",
    "DepsError",
    "DepsReport",
    "LocalIndex",
    "OsvApi",
    "Package",
    "Record",
    "audit",
    "collect",
    "current_environment",
    "from_environment",
    "from_lockfile",
    "from_pyproject",
    "from_requirement",
    "from_requirements",
    "from_site_packages",
    "import_database",
    "index_path",
]
