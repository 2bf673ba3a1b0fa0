"""Shared fixtures: real PostgreSQL and Redis when present, a fresh workspace, a canary.

Service-backed tests skip with a reason when the service is absent, unless
``BASTION_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bastion.store.workspace import Workspace, init_workspace

REQUIRE_SERVICES = os.environ.get("BASTION_REQUIRE_SERVICES") == "1"
POSTGRES_ADMIN_URL = os.environ.get(
    "BASTION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SHARED = os.environ.get("BASTION_REQUIRE_SHARED") == "1"
SHARED = Path(__file__).resolve().parents[2] / "shared"


def shared_file(relative: str) -> Path:
    """A file of the project's ``shared/`` folder beside the checkout (reference texts, data
    snapshots): skipped with the reason when it is absent, as in a bare clone, and a failure
    under ``BASTION_REQUIRE_SHARED=1`` (CI, where it is always there)."""
    path = SHARED / relative
    if not path.exists():
        message = f"{path} is not here (a clone without the project's shared/ beside it)"
        if REQUIRE_SHARED:
            pytest.fail(f"{message}; BASTION_REQUIRE_SHARED=1 forbids skipping")
        pytest.skip(message)
    return path


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc.__class__.__name__}: {exc})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; BASTION_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(f"{message}; start it or set BASTION_TEST_POSTGRES_URL / BASTION_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """A PostgreSQL URL with the right to create databases."""
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means "not available"
        _unavailable("PostgreSQL", exc)
    finally:
        engine.dispose()
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"bastion_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def redis_url() -> str:
    """A Redis database for tests (db 15), emptied first."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        _unavailable("Redis", exc)
    client.flushdb()
    return REDIS_URL


@pytest.fixture
def workspace_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for a workspace on either database (also applied to os.environ)."""
    env = {"BASTION_ACTOR": "tester"}
    if not database_url.startswith("sqlite"):
        env["BASTION_DATABASE_URL"] = database_url
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BASTION_HOME", raising=False)
    return env


@pytest.fixture
def workspace(tmp_path: Path, workspace_env: dict[str, str]) -> Iterator[Workspace]:
    """A fresh workspace in ``tmp_path`` on SQLite or PostgreSQL."""
    ws = init_workspace(tmp_path / "project", env=workspace_env)
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A path malicious fixtures would create if they were ever executed."""
    return tmp_path / "CANARY-was-executed"
