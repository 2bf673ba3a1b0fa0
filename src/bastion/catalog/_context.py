"""What every catalog operation shares: the workspace, the blob store, the acting principal,
transactions, resolving references, role checks and audit entries.

:class:`~bastion.catalog.service.Catalog` holds one :class:`CatalogContext` and hands it to the
modules that do the work (``_register``, ``_read``, ``_review``, ``_integrity``), so none of them
reaches into another's privates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, and_, select
from sqlalchemy.exc import SQLAlchemyError

from bastion.catalog._rows import VERSION_COLUMNS, VersionRow, as_version
from bastion.catalog.records import Ref
from bastion.errors import AccessDeniedError, NotFoundError, StorageError
from bastion.findings import Severity
from bastion.store import schema as t
from bastion.store.blobs import BlobStore
from bastion.store.db import is_postgres
from bastion.store.roles import Role
from bastion.store.workspace import Workspace

__all__ = ["GATE", "CatalogContext"]

GATE: Final = Severity.HIGH
"""Findings at or above this refuse registration and reads unless a risk was accepted."""
_CATALOG_LOCK: Final = 1651078517  # PostgreSQL advisory lock serialising catalog writes


@dataclass(frozen=True, slots=True)
class CatalogContext:
    """One workspace's catalog state, shared by the catalog's modules."""

    workspace: Workspace
    """Settings, engine, signing key and audit log."""
    store: BlobStore
    """Where the encrypted blobs live."""

    @property
    def actor(self) -> str:
        """Who is acting (``BASTION_ACTOR`` or the OS user)."""
        return self.workspace.settings.actor

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only connection; database failures become :class:`StorageError`."""
        try:
            with self.workspace.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot read the catalog: {exc.__class__.__name__}",
                hint="check that the database is reachable",
            ) from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One serialised write transaction: the change and its audit entries commit together."""
        try:
            with self.workspace.engine.begin() as conn:
                if is_postgres(conn):  # SQLite already holds its write lock (BEGIN IMMEDIATE)
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CATALOG_LOCK})")
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot write the catalog: {exc.__class__.__name__}",
                hint="check that the database is reachable and writable",
            ) from exc

    def audit(
        self, action: str, subject: str, *, connection: Connection | None = None, **details: Any
    ) -> None:
        """Append an audit entry as the actor, inside ``connection``'s transaction if given."""
        self.workspace.audit.append(
            actor=self.actor, action=action, subject=subject, details=details,
            connection=connection,
        )

    def asset_id(self, conn: Connection, name: str) -> int:
        """The id of asset ``name``, or :class:`NotFoundError`."""
        found = conn.execute(select(t.assets.c.id).where(t.assets.c.name == name)).scalar()
        if found is None:
            raise NotFoundError(f"no asset named {name!r}", hint="see 'bastion list'")
        return int(found)

    def resolve(self, conn: Connection, text: str) -> VersionRow:
        """The version ``NAME``, ``NAME@N`` or ``NAME@ALIAS`` names (``NAME``: the newest)."""
        ref = Ref.parse(text)
        query = select(*VERSION_COLUMNS).join(t.assets, t.assets.c.id == t.versions.c.asset_id)
        query = query.where(t.assets.c.name == ref.name)
        if ref.version is not None:
            query = query.where(t.versions.c.number == ref.version)
        elif ref.alias is not None:
            query = query.join(t.aliases, and_(
                t.aliases.c.version_id == t.versions.c.id, t.aliases.c.alias == ref.alias,
            ))
        row = conn.execute(query.order_by(t.versions.c.number.desc()).limit(1)).first()
        if row is None:
            what = "asset" if ref.version is None and ref.alias is None else "version"
            raise NotFoundError(f"no {what} {text!r} in the catalog", hint="see 'bastion list'")
        return as_version(row)

    def role(self, conn: Connection, asset_id: int) -> Role | None:
        """The actor's role on an asset, if any."""
        role = conn.execute(
            select(t.collaborators.c.role).where(and_(
                t.collaborators.c.asset_id == asset_id,
                t.collaborators.c.principal == self.actor,
            ))
        ).scalar()
        return Role(role) if role else None

    def require(self, conn: Connection, asset_id: int, role: Role, action: str) -> None:
        """Refuse with :class:`AccessDeniedError` unless the actor holds ``role`` or higher."""
        held = self.role(conn, asset_id)
        if held is None or held.rank < role.rank:
            name = conn.execute(select(t.assets.c.name).where(t.assets.c.id == asset_id)).scalar()
            raise AccessDeniedError(
                f"{self.actor} may not {action}: needs the {role.value} role "
                f"(holds {held.value if held else 'none'})",
                hint=f"an admin of {name} can run 'bastion grant {name} {self.actor} {role.value}'",
            )
