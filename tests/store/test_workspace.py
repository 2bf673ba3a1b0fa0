from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from bastion.errors import ConfigError, WorkspaceError
from bastion.store.keys import KEK_BYTES, SigningKey, load_kek
from bastion.store.workspace import Workspace, init_workspace


def test_init_lays_out_a_workspace_with_private_keys(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path, env={})
    ws.close()
    home = tmp_path / ".bastion"
    assert (home / "config.yaml").is_file() and (home / "blobs").is_dir()
    for secret in (home / "keys" / "signing.pem", home / "keys" / "kek"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    assert len(load_kek(home / "keys" / "kek")) == KEK_BYTES
    key = SigningKey.from_file(home / "keys" / "signing.pem")
    assert key.private_key.curve.name == "secp256r1"
    mode = sqlite3.connect(home / "bastion.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_init_is_audited_and_sealed(tmp_path: Path) -> None:
    with init_workspace(tmp_path, env={"BASTION_ACTOR": "alice"}) as ws:
        entries = ws.audit.entries()
    assert [(e.actor, e.action) for e in entries] == [("alice", "workspace.init")]
    with Workspace.open(tmp_path / ".bastion", env={}) as ws:
        assert ws.audit.verify().sealed_through == 1


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    init_workspace(tmp_path, env={}).close()
    key = (tmp_path / ".bastion/keys/signing.pem").read_bytes()
    with pytest.raises(WorkspaceError, match="already exists"):
        init_workspace(tmp_path, env={})
    assert (tmp_path / ".bastion/keys/signing.pem").read_bytes() == key


def test_workspace_is_found_walking_up_and_by_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BASTION_HOME", raising=False)
    init_workspace(tmp_path, env={}).close()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    with Workspace.find(start=deep) as ws:
        assert ws.settings.home == tmp_path / ".bastion"
    with Workspace.find(start=Path("/"), home=tmp_path) as ws:
        assert ws.settings.home == tmp_path / ".bastion"
    with pytest.raises(WorkspaceError) as info:
        Workspace.find(start=Path("/"))
    assert "bastion init" in str(info.value.hint)


def test_group_readable_key_is_refused(tmp_path: Path) -> None:
    init_workspace(tmp_path, env={}).close()
    (tmp_path / ".bastion/keys/signing.pem").chmod(0o640)
    with pytest.raises(ConfigError, match="readable by other users") as info:
        Workspace.open(tmp_path / ".bastion", env={})
    assert "chmod 600" in str(info.value.hint)


def test_malformed_config_is_a_clear_error(tmp_path: Path) -> None:
    init_workspace(tmp_path, env={}).close()
    (tmp_path / ".bastion/config.yaml").write_text("audit: [unclosed\n")
    with pytest.raises(ConfigError, match=r"config\.yaml"):
        Workspace.open(tmp_path / ".bastion", env={})
    (tmp_path / ".bastion/config.yaml").write_text("audit:\n  checkpoint_every: -3\n")
    with pytest.raises(ConfigError, match="checkpoint_every"):
        Workspace.open(tmp_path / ".bastion", env={})


@pytest.mark.postgres
def test_postgres_workspace_refuses_to_fall_back_to_sqlite(
    tmp_path: Path, postgres_url: str
) -> None:
    init_workspace(tmp_path, env={"BASTION_DATABASE_URL": postgres_url}).close()
    assert not (tmp_path / ".bastion/bastion.db").exists()
    with pytest.raises(ConfigError, match="BASTION_DATABASE_URL is not set"):
        Workspace.open(tmp_path / ".bastion", env={})
    with Workspace.open(tmp_path / ".bastion", env={"BASTION_DATABASE_URL": postgres_url}) as ws:
        assert [e.action for e in ws.audit.entries()] == ["workspace.init"]


def test_crashed_init_can_be_completed(tmp_path: Path) -> None:
    # an earlier init died after writing the key but before the config
    (tmp_path / ".bastion/keys").mkdir(parents=True)
    from bastion.store.keys import create_signing_key

    key = create_signing_key(tmp_path / ".bastion/keys/signing.pem")
    with init_workspace(tmp_path, env={}) as ws:
        assert ws.signer.verifying_key.key_id == key.verifying_key.key_id
