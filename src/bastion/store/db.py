"""Database engines and migrations: the same code on SQLite (embedded) and PostgreSQL (a team).

SQLite runs in WAL mode with ``synchronous=FULL`` and takes its write lock at ``BEGIN``
(``BEGIN IMMEDIATE``), so two writers never both read a stale head and then collide.
PostgreSQL writers that must be serialised (the audit chain) take an advisory lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from bastion.errors import StorageError

__all__ = ["is_postgres", "make_engine", "migrate", "needs_migration"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the settings Bastion relies on."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(
            f"cannot parse the database URL {url!r}",
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    raise StorageError(
        f"unsupported database {parsed.get_backend_name()!r}",
        hint="Bastion supports SQLite and PostgreSQL",
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN IMMEDIATE instead of pysqlite's deferred BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=FULL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=60000",
    ):
        cursor.execute(pragma)
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(connection: Connection) -> bool:
    """Whether ``connection`` talks to PostgreSQL."""
    return connection.dialect.name == "postgresql"


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def needs_migration(engine: Engine) -> bool:
    """Whether the database is behind the newest migration."""
    head = ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise StorageError(
            f"cannot reach the database: {exc.orig.__class__.__name__}",
            hint="check BASTION_DATABASE_URL and that the server is running",
        ) from exc
    return current != head


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest migration (idempotent, one transaction)."""
    try:
        with engine.begin() as connection:
            if is_postgres(connection):
                # Serialise concurrent first starts of several replicas.
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(1651078515)")
            command.upgrade(_alembic_config(connection), "head")
    except SQLAlchemyError as exc:
        raise StorageError(
            f"cannot migrate the database: {exc.__class__.__name__}",
            hint="check BASTION_DATABASE_URL and the database user's rights",
        ) from exc
