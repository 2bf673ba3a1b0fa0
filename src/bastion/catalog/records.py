"""What the catalog returns and accepts: references, statuses, roles and result records.

Results are frozen dataclasses with a ``to_dict`` for JSON output; they carry plain data only,
so the CLI and the REST server render them without touching the database.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Self

from bastion.errors import BastionError, UsageError
from bastion.findings import Finding, Location, Principle, Severity

__all__ = [
    "FsckReport",
    "Kind",
    "LineageNode",
    "LineageReport",
    "Problem",
    "Ref",
    "ReadRefusedError",
    "RefusedError",
    "RegistrationRefusedError",
    "Relation",
    "Status",
    "VersionInfo",
    "VersionSummary",
    "Verification",
]

NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
ALIAS_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")


class Kind(enum.StrEnum):
    """What an asset is."""

    MODEL = "model"
    DATASET = "dataset"


class Status(enum.StrEnum):
    """A version's place in its life: draft → in_review → approved → deprecated → archived or
    destroyed. Files and card never change; only the status moves."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"
    DESTROYED = "destroyed"


class Relation(enum.StrEnum):
    """How one version depends on another."""

    TRAINED_ON = "trained_on"
    DERIVED_FROM = "derived_from"
    EVALUATED_ON = "evaluated_on"


class RefusedError(BastionError):
    """A gate refused: findings at or above it, and no risk accepted (exit 1, HTTP 422)."""

    exit_code = 1

    def __init__(
        self, message: str, findings: Sequence[Finding], *, hint: str, param: str | None = None
    ) -> None:
        super().__init__(message, hint=hint, param=param)
        self.findings = tuple(findings)
        """The findings that decided."""


class RegistrationRefusedError(RefusedError):
    """The scan of what was to be registered found problems at or above the gate."""


class ReadRefusedError(RefusedError):
    """A version with unaccepted findings at or above the gate is not handed out."""


@dataclass(frozen=True, slots=True)
class Ref:
    """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""

    name: str
    """The asset name."""
    version: int | None = None
    """A version number, when given."""
    alias: str | None = None
    """An alias (``production``), when given instead of a number."""

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse a reference, naming what is malformed."""
        name, _, selector = text.strip().partition("@")
        if not NAME_RE.match(name):
            raise UsageError(
                f"{text!r} is not an asset reference",
                hint="write NAME, NAME@VERSION or NAME@ALIAS (letters, digits, . _ - /)",
            )
        if not selector:
            return cls(name)
        if selector.isdigit():
            return cls(name, version=int(selector))
        if selector.startswith("v") and selector[1:].isdigit():
            return cls(name, version=int(selector[1:]))
        if not ALIAS_RE.match(selector):
            raise UsageError(
                f"{selector!r} in {text!r} is neither a version number nor an alias",
                hint="write NAME@3 or NAME@production",
            )
        return cls(name, alias=selector)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


@dataclass(frozen=True, slots=True)
class VersionSummary:
    """One row of ``bastion list``."""

    name: str
    """Asset name."""
    kind: Kind
    """Model or dataset."""
    version: int
    """Version number, from 1."""
    status: Status
    """Where the version is in its life."""
    sensitivity: str
    """The asset's sensitivity level."""
    digest: str
    """Manifest digest: the version's identity."""
    author: str
    """Who registered it."""
    created_at: str
    """When (UTC)."""
    files: int
    """How many files."""
    size: int
    """Bytes in all files."""

    @property
    def ref(self) -> str:
        """``NAME@VERSION``."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "name": self.name,
            "kind": self.kind.value,
            "version": self.version,
            "status": self.status.value,
            "sensitivity": self.sensitivity,
            "digest": self.digest,
            "author": self.author,
            "created_at": self.created_at,
            "files": self.files,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """Everything ``bastion show`` tells about one version."""

    summary: VersionSummary
    """The list row."""
    owner: str
    """The asset's owner."""
    card: Mapping[str, Any]
    """The stored card (validated, with Bastion's computed fields)."""
    manifest: Sequence[Mapping[str, Any]]
    """Every file: path, size, sha256."""
    findings: Sequence[Finding]
    """Findings bound to this version's digest."""
    accepted_risk: str | None
    """The reason given with ``--accept-risk``, if any."""
    lineage: Sequence[tuple[str, str]]
    """Direct parents as (relation, NAME@VERSION)."""
    aliases: Sequence[str]
    """Aliases pointing here."""
    reviews: Sequence[Mapping[str, Any]]
    """Review requests and decisions, oldest first."""
    key_id: str
    """The signing key's id."""
    collaborators: Mapping[str, str]
    """Principal → role on the asset."""
    public_key: str = ""
    """The signing key's public half (PEM): the workspace key's, or the user's who signed."""
    assessments: Sequence[Mapping[str, Any]] = ()
    """Attack-test records, oldest first: id, at, actor, policy_digest, passed, stale (bound
    to another digest, or a release policy other than the current one)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **self.summary.to_dict(),
            "owner": self.owner,
            "collaborators": dict(self.collaborators),
            "aliases": list(self.aliases),
            "lineage": [{"relation": r, "ref": ref} for r, ref in self.lineage],
            "accepted_risk": self.accepted_risk,
            "findings": [f.to_dict() for f in self.findings],
            "reviews": [dict(r) for r in self.reviews],
            "assessments": [dict(a) for a in self.assessments],
            "key_id": self.key_id,
            "public_key": self.public_key,
            "manifest": [dict(m) for m in self.manifest],
            "card": dict(self.card),
        }


@dataclass(frozen=True, slots=True)
class LineageNode:
    """A version reached while walking lineage."""

    ref: str
    """``NAME@VERSION``."""
    kind: Kind
    """Model or dataset."""
    status: Status
    """Its status (a destroyed or deprecated ancestor shows here)."""
    relation: str
    """The edge that reached it (``trained_on`` …)."""
    via: str
    """The version on the other end of that edge."""
    depth: int
    """1 for direct parents or children, 2 through one intermediate, …"""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "kind": self.kind.value,
            "status": self.status.value,
            "relation": self.relation,
            "via": self.via,
            "depth": self.depth,
        }


@dataclass(frozen=True, slots=True)
class LineageReport:
    """Both directions of ``bastion lineage``."""

    ref: str
    """The version asked about."""
    upstream: Sequence[LineageNode]
    """What it was trained on, derived from, evaluated on — transitively."""
    downstream: Sequence[LineageNode]
    """What was trained on or derived from it — transitively."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "upstream": [n.to_dict() for n in self.upstream],
            "downstream": [n.to_dict() for n in self.downstream],
        }


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not match what was recorded."""

    kind: str
    """What was checked: ``blob``, ``signature``, ``files-row``, ``version-row``, ``card``,
    ``findings``, ``key``, ``audit``, ``orphan``…"""
    subject: str
    """Where: a version, a file path, a blob, an audit entry."""
    message: str
    """Exactly what does not match."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "subject": self.subject, "message": self.message}


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of ``bastion verify NAME@VER``."""

    ref: str
    """The version checked."""
    digest: str
    """Its recorded manifest digest."""
    files: int
    """Files re-hashed."""
    bytes: int
    """Bytes decrypted and re-hashed."""
    problems: Sequence[Problem] = field(default_factory=tuple)
    """Every mismatch."""

    @property
    def ok(self) -> bool:
        """Nothing failed."""
        return not self.problems

    def findings(self) -> list[Finding]:
        """Each mismatch as a critical finding (NCSC 2.4: the asset is not what was recorded)."""
        return [
            Finding(
                rule=f"catalog.verify.{p.kind}",
                severity=Severity.CRITICAL,
                title=p.message,
                principle=Principle.P2_4,
                location=Location(path=self.ref, member=p.subject),
                remediation="Do not use this version; restore it from a trusted copy and find "
                "out who could write to the catalog.",
                evidence={"kind": p.kind, "subject": p.subject},
            )
            for p in self.problems
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "digest": self.digest,
            "files": self.files,
            "bytes": self.bytes,
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass(frozen=True, slots=True)
class FsckReport:
    """The outcome of ``bastion fsck``: database ↔ blob store ↔ audit chain."""

    versions: int
    """Versions checked."""
    scopes: int
    """Blob scopes found in the store."""
    problems: Sequence[Problem] = field(default_factory=tuple)
    """Damage: missing blobs, broken audit chain, versions without their audit entry."""
    orphans: Sequence[Problem] = field(default_factory=tuple)
    """Leftovers of interrupted writes (harmless; removed with ``--clean``)."""
    cleaned: int = 0
    """How many orphans were removed."""

    @property
    def ok(self) -> bool:
        """No damage (orphans are not damage)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "versions": self.versions,
            "scopes": self.scopes,
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "orphans": [p.to_dict() for p in self.orphans],
            "cleaned": self.cleaned,
        }
