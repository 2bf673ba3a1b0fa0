from __future__ import annotations

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
