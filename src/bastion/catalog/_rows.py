"""Rows as the catalog reads them: the resolved version, summaries, digests over rows."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select

from bastion.catalog.records import Kind, Status, VersionSummary
from bastion.errors import ConfigError, IntegrityError
from bastion.store import schema as t
from bastion.store.audit import canonical_json
from bastion.store.blobs import StoredBlob
from bastion.store.keys import VerifyingKey

__all__ = [
    "VERSION_COLUMNS",
    "VersionRow",
    "as_summary",
    "as_version",
    "blobs_digest",
    "escape_like",
    "findings_digest",
    "sha_text",
    "signer_key",
    "stored_blob",
    "summary_query",
]




def sha_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()



@dataclass(frozen=True, slots=True)
class VersionRow:
    """A resolved version row with its asset."""

    id: int
    asset_id: int
    name: str
    kind: Kind
    number: int
    status: Status
    digest: str
    author: str
    scope: str
    wrapped_key: str | None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"


VERSION_COLUMNS: Final = (
    t.versions.c.id,
    t.versions.c.asset_id,
    t.assets.c.name,
    t.assets.c.kind,
    t.versions.c.number,
    t.versions.c.status,
    t.versions.c.digest,
    t.versions.c.author,
    t.versions.c.blob_scope,
    t.versions.c.wrapped_key,
)


def as_version(row: Any) -> VersionRow:
    return VersionRow(
        int(row.id), int(row.asset_id), row.name, Kind(row.kind), int(row.number),
        Status(row.status), row.digest, row.author, row.blob_scope, row.wrapped_key,
    )



def stored_blob(row: Any) -> tuple[str, StoredBlob]:
    return row.path, StoredBlob(row.sha256, int(row.size), row.blob_id, row.blob_sha256)


def blobs_digest(stored: Sequence[tuple[str, StoredBlob]]) -> str:
    """One digest over every file's stored-ciphertext digest, recorded in the audit entry."""
    return sha_text(canonical_json(sorted([rel, b.sealed_sha256] for rel, b in stored)))


def findings_digest(rows: Sequence[tuple[str, bool]]) -> str:
    return sha_text(canonical_json([[text, accepted] for text, accepted in rows]))


def summary_query() -> Any:
    return select(
        t.assets.c.name, t.assets.c.kind, t.versions.c.number, t.versions.c.status,
        t.assets.c.sensitivity, t.versions.c.digest, t.versions.c.author,
        t.versions.c.created_at, t.versions.c.file_count, t.versions.c.total_size,
    ).join(t.assets, t.assets.c.id == t.versions.c.asset_id)


def as_summary(row: Any) -> VersionSummary:
    return VersionSummary(
        name=row.name, kind=Kind(row.kind), version=int(row.number), status=Status(row.status),
        sensitivity=row.sensitivity, digest=row.digest, author=row.author,
        created_at=row.created_at, files=int(row.file_count), size=int(row.total_size),
    )


def signer_key(public_key: str | None, key_id: str, workspace_key: VerifyingKey) -> VerifyingKey:
    """The key that signed a version: its recorded public key (NULL in rows older than
    migration 0004: the workspace key), which must hash to the recorded key id."""
    try:
        key = workspace_key if public_key is None else VerifyingKey.from_pem(public_key.encode())
    except (ValueError, ConfigError):
        raise IntegrityError("the recorded signing public key is not an EC P-256 key") from None
    if key.key_id != key_id:
        raise IntegrityError(
            f"the recorded signing public key (id {key.key_id[:16]}…) is not the key the "
            f"version names ({key_id[:16]}…)"
        )
    return key


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
