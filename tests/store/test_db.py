from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from bastion.errors import StorageError
from bastion.store.db import make_engine, migrate, needs_migration


def test_migrate_is_idempotent_on_both_databases(database_url: str) -> None:
    engine = make_engine(database_url)
    assert needs_migration(engine)
    migrate(engine)
    migrate(engine)
    assert not needs_migration(engine)
    assert {"audit_entries", "audit_checkpoints"} <= set(inspect(engine).get_table_names())
    engine.dispose()


@pytest.mark.parametrize("url", ["nonsense", "mysql://x@y/z"])
def test_bad_database_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(StorageError) as info:
        make_engine(url)
    assert info.value.hint


def test_unreachable_database_is_a_storage_error() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StorageError, match="cannot reach the database"):
        needs_migration(engine)
    engine.dispose()


def test_the_tables_are_what_the_migrations_create(database_url: str) -> None:
    """``schema.py`` and the migrations describe the same database: a column, index or table
    added to one and not the other is a difference Alembic's autogenerate reports."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from bastion.store.schema import metadata

    engine = make_engine(database_url)
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == []
    assert set(metadata.tables) >= {"versions", "api_tokens", "audit_entries"}


def test_the_comparison_sees_a_table_the_migrations_lack(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import Column, Integer, MetaData, Table

    from bastion.store.schema import metadata

    extra = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(extra)
    Table("planted", extra, Column("id", Integer, primary_key=True))
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), extra)
    engine.dispose()
    assert [d[0] for d in differences] == ["add_table"]
