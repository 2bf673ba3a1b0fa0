"""SQLAlchemy table definitions. Changes go through an Alembic migration in ``migrations/``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "accepted_risks",
    "alias_history",
    "api_tokens",
    "aliases",
    "assets",
    "audit_checkpoints",
    "audit_entries",
    "collaborators",
    "files",
    "findings",
    "lineage",
    "metadata",
    "reviews",
    "versions",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Append-only, hash-chained audit log (NCSC 2.3, 2.4, 3.2). Times and details are stored as the
# exact text that was hashed, so verification never depends on a database's type round trip.
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_entries_subject", "subject"),
    Index("ix_audit_entries_action", "action"),
    Index("ix_audit_entries_at", "at"),
)

# Signed statements "the chain's head at seq N is hash H", made with the workspace key.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("signature", Text, nullable=False),
)

# -- the asset catalog (migration 0002) ----------------------------------------------------------
# Times are ISO 8601 UTC text (portable, sortable); JSON columns are canonical JSON text, so a
# digest recorded in the audit log can be recomputed from the row byte for byte.

assets = Table(
    "assets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False, unique=True),
    Column("owner", String(200), nullable=False),
    Column("sensitivity", String(32), nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_assets_kind", "kind"),
    Index("ix_assets_sensitivity", "sensitivity"),
)

collaborators = Table(
    "collaborators",
    metadata,
    Column("asset_id", Integer, ForeignKey("assets.id"), primary_key=True),
    Column("principal", String(200), primary_key=True),
    Column("role", String(16), nullable=False),
)

versions = Table(
    "versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("asset_id", Integer, ForeignKey("assets.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("author", String(200), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("card", Text, nullable=False),
    Column("signature", Text, nullable=False),
    Column("key_id", String(64), nullable=False),
    # The signer's public key, PEM (migration 0004); NULL: the workspace key (older rows).
    Column("public_key", Text, nullable=True),
    Column("blob_scope", String(32), nullable=False, unique=True),
    Column("wrapped_key", Text, nullable=True),  # NULL once crypto-shredded
    Column("file_count", Integer, nullable=False),
    Column("total_size", BigInteger, nullable=False),
    Column("search_text", Text, nullable=False),
    UniqueConstraint("asset_id", "number", name="uq_versions_asset_number"),
    Index("ix_versions_status", "status"),
    Index("ix_versions_digest", "digest"),
)

files = Table(
    "files",
    metadata,
    Column("version_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("blob_id", String(32), nullable=False),
    Column("blob_sha256", String(64), nullable=False),  # of the stored ciphertext
)

lineage = Table(
    "lineage",
    metadata,
    Column("child_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Column("relation", String(20), primary_key=True),
    Column("parent_id", Integer, ForeignKey("versions.id"), primary_key=True),
    Index("ix_lineage_parent", "parent_id"),
)

findings = Table(
    "findings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_findings_version", "version_id"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("asset_id", Integer, ForeignKey("assets.id"), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

# Every move of an alias, oldest first: rollback walks this backwards.
alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("asset_id", Integer, ForeignKey("assets.id"), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("action", String(16), nullable=False),  # set | rollback
    Column("at", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Index("ix_alias_history_asset_alias", "asset_id", "alias"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("reviewer", String(200), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("comment", Text, nullable=False),
    Column("at", String(32), nullable=False),
    Index("ix_reviews_version", "version_id"),
)

accepted_risks = Table(
    "accepted_risks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", String(32), nullable=False),
    Column("rules", Text, nullable=False),
    Index("ix_accepted_risks_version", "version_id"),
)

# Attack-test results bound to a version's digest and the policy's (migration 0005).
assessments = Table(
    "assessments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("versions.id"), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("policy_digest", String(64), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("record", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", String(32), nullable=False),
    Index("ix_assessments_version", "version_id"),
)

api_tokens = Table(  # migration 0003; only the REST server reads it
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("principal", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires_at", String(32), nullable=True),
    Column("revoked_at", String(32), nullable=True),
)
