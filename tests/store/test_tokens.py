"""API tokens: shown once, stored hashed, revocable, expiring, audited; on both databases."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bastion.cli.app import main
from bastion.errors import AuthenticationError, NotFoundError, UsageError
from bastion.store.roles import Role
from bastion.store.tokens import TokenStore, api_tokens
from bastion.store.workspace import Workspace


def test_token_is_random_256_bits_and_only_its_hash_is_stored(workspace: Workspace) -> None:
    store = TokenStore(workspace)
    secret, info = store.create("ci", Role.CONTRIBUTOR, principal="ci-bot")
    other, _ = store.create("alice", Role.REVIEWER)
    assert secret.startswith("bst_") and len(secret) == 4 + 43  # 32 bytes, base64url
    assert secret != other
    with workspace.engine.connect() as conn:
        rows = conn.execute(select(api_tokens)).mappings().all()
        dump = "\n".join(str(dict(r)) for r in rows)
    assert secret not in dump and secret[4:] not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() in dump
    identity = store.authenticate(secret)
    assert (identity.principal, identity.role, identity.token) == ("ci-bot", Role.CONTRIBUTOR, "ci")
    assert identity.allows(Role.VIEWER) and not identity.allows(Role.REVIEWER)
    assert info.to_dict()["role"] == "contributor"


def test_unknown_malformed_revoked_and_expired_tokens_are_refused(workspace: Workspace) -> None:
    store = TokenStore(workspace)
    secret, _ = store.create("ci", Role.VIEWER)
    with pytest.raises(AuthenticationError, match="not known"):
        store.authenticate(secret[:-2] + "xx")
    with pytest.raises(AuthenticationError, match="malformed"):
        store.authenticate("Basic abc")
    store.revoke("ci")
    with pytest.raises(AuthenticationError, match="revoked"):
        store.authenticate(secret)
    assert store.list()[0].revoked_at is not None
    old, _ = store.create("old", Role.ADMIN, expires_in=timedelta(days=1))
    with workspace.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE api_tokens SET expires_at = '2020-01-01T00:00:00.000000Z'"
                " WHERE name = 'old'"
            )
        )
    with pytest.raises(AuthenticationError, match="expired"):
        store.authenticate(old)


def test_names_are_unique_checked_and_changes_audited(workspace: Workspace) -> None:
    store = TokenStore(workspace)
    store.create("ci", Role.VIEWER)
    with pytest.raises(UsageError, match="already exists"):
        store.create("ci", Role.ADMIN)
    with pytest.raises(UsageError, match="is not allowed"):
        store.create("bad name; drop", Role.ADMIN)
    with pytest.raises(NotFoundError):
        store.revoke("nobody")
    store.revoke("ci")
    actions = [(e.action, e.subject, e.actor) for e in workspace.audit.entries(action="token.*")]
    assert actions == [
        ("token.create", "token:ci", "tester"),
        ("token.revoke", "token:ci", "tester"),
    ]


def test_cli_prints_the_secret_once_on_stdout(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(workspace.settings.home)
    assert main(["--home", home, "token", "create", "--name", "ci", "--role", "reviewer"]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert "not shown again" in err and secret not in err
    assert TokenStore(workspace).authenticate(secret).role is Role.REVIEWER
    assert main(["--home", home, "token", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert '"name": "ci"' in listed and secret not in listed
    assert main(["--home", home, "token", "create", "--name", "x", "--role", "root"]) == 2
    assert main(["--home", home, "token", "revoke", "ci"]) == 0


def test_token_table_comes_from_the_migration(tmp_path: Path, workspace: Workspace) -> None:
    with workspace.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version >= "0003"
