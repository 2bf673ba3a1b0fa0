"""The dependency audit's contracts: packages in, advisories out, and where advisories come from.

A :class:`Package` is one distribution as a requirements set, lockfile or environment names it;
it is *resolved* when it has an exact version. An :class:`AdvisorySource` (the local OSV index or
an OSV-compatible API) answers, for resolved packages, which OSV records affect them, and says how
old its knowledge is (:class:`DatabaseInfo`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from packaging.utils import NormalizedName, canonicalize_name

from bastion.errors import BastionError

__all__ = ["AdvisorySource", "DatabaseInfo", "DepsError", "Package", "Record"]


class DepsError(BastionError):
    """The audit cannot run: unreadable input, a malformed advisory, no database."""


@dataclass(frozen=True, slots=True)
class Package:
    """One distribution to audit."""

    name: str
    """The name as the input spells it."""
    version: str | None
    """The exact version, or ``None`` when the input does not pin one."""
    source: str
    """Where it was named: a file path, or ``environment:<path>``."""
    reason: str = ""
    """Why there is no exact version (a range, a URL, an editable install)."""

    @property
    def key(self) -> NormalizedName:
        """The PEP 503 normalised name, under which advisories are filed."""
        return canonicalize_name(self.name)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name


@dataclass(frozen=True, slots=True)
class Record:
    """One OSV record, kept as parsed JSON; ``_osv`` reads it by the schema."""

    id: str
    """The advisory id (``PYSEC-2021-66``, ``GHSA-…``)."""
    modified: datetime
    """When the record last changed (the database's age is the newest of these)."""
    data: Mapping[str, Any]
    """The whole record."""


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """How old an advisory source's knowledge is; shown in every report."""

    location: str
    """The index file or the API URL."""
    source: str
    """What was imported (a directory or zip), or the URL."""
    imported_at: datetime | None
    """When the index was built (``None`` for a live API)."""
    newest_modified: datetime | None
    """The newest ``modified`` among the records (``None`` for a live API)."""
    records: int
    """How many PyPI records the index holds (0 for a live API)."""
    sha256: str | None = None
    """Digest over the imported files' names and bytes (``None`` for a live API)."""

    def age_days(self, now: datetime) -> float | None:
        """Days since the newest record changed: how stale the knowledge is."""
        if self.newest_modified is None:
            return None
        return (now - self.newest_modified).total_seconds() / 86400

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """JSON-ready form, with the age in days."""
        age = self.age_days(now)
        return {
            "location": self.location,
            "source": self.source,
            "imported_at": self.imported_at.isoformat() if self.imported_at else None,
            "newest_modified": self.newest_modified.isoformat() if self.newest_modified else None,
            "records": self.records,
            "sha256": self.sha256,
            "age_days": round(age, 1) if age is not None else None,
        }


class AdvisorySource(Protocol):
    """Where advisories come from: the local index or an OSV-compatible API."""

    def info(self) -> DatabaseInfo:
        """Describe the source and its age."""
        ...

    def affecting(self, packages: Sequence[Package]) -> Mapping[Package, Sequence[Record]]:
        """The non-withdrawn records that affect each resolved package (absent: none)."""
        ...
