"""A workspace: settings, database, keys and audit log, opened together.

``bastion init`` makes one (``.bastion/``: ``config.yaml``, SQLite in WAL mode, ``blobs/``,
``keys/``); every other command opens the nearest one::

    ws = init_workspace(Path("project"))
    ws.audit.append(actor="alice", action="note", subject="demo")
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import yaml
from sqlalchemy import Engine

from bastion._fs import atomic_write
from bastion.config import WORKSPACE_DIR, Settings, find_workspace, load_settings
from bastion.errors import WorkspaceError
from bastion.store.audit import AuditLog
from bastion.store.db import make_engine, migrate, needs_migration
from bastion.store.keys import SigningKey, create_kek, create_signing_key

__all__ = ["Workspace", "init_workspace"]


@dataclass
class Workspace:
    """An open workspace. Close it (or use ``with``) to seal the audit chain."""

    settings: Settings
    engine: Engine
    signer: SigningKey
    audit: AuditLog

    @classmethod
    def open(cls, home: Path, env: Mapping[str, str] | None = None) -> Self:
        """Open the workspace at ``home`` (the ``.bastion`` directory), migrating if needed."""
        settings = load_settings(home, env)
        engine = make_engine(settings.database_url)
        if needs_migration(engine):
            migrate(engine)
        signer = SigningKey.from_file(settings.signing_key_file)
        audit = AuditLog(
            engine,
            signer,
            checkpoint_every=settings.checkpoint_every,
            checkpoint_file=settings.checkpoint_file,
        )
        return cls(settings, engine, signer, audit)

    @classmethod
    def find(cls, start: Path | None = None, home: str | os.PathLike[str] | None = None) -> Self:
        """Open the workspace ``--home``/``BASTION_HOME`` names, or the nearest one above."""
        return cls.open(find_workspace(start, home))

    def record(self, action: str, subject: str, **details: Any) -> None:
        """Append an audit entry as the current actor."""
        self.audit.append(
            actor=self.settings.actor, action=action, subject=subject, details=details
        )

    def close(self) -> None:
        """Seal what this session appended with a signed checkpoint, then release the engine."""
        try:
            self.audit.checkpoint()
        finally:
            self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def init_workspace(directory: Path, env: Mapping[str, str] | None = None) -> Workspace:
    """Create ``directory/.bastion`` and return it opened; refuse to touch an existing one."""
    home = directory.resolve() / WORKSPACE_DIR
    if (home / "config.yaml").exists():
        raise WorkspaceError(
            f"a workspace already exists at {home}",
            hint="use it as it is; Bastion never overwrites a workspace or its keys",
        )
    try:
        (home / "keys").mkdir(parents=True, exist_ok=True, mode=0o700)
        (home / "blobs").mkdir(exist_ok=True, mode=0o700)
        os.chmod(home / "keys", 0o700)
    except OSError as exc:
        raise WorkspaceError(
            f"cannot create {home}: {exc.strerror}", hint="choose a directory you can write"
        ) from exc
    config = {
        "version": 1,
        "workspace_id": str(uuid.uuid4()),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "audit": {"checkpoint_every": 256},
    }
    settings = load_settings(home, env, config=config)
    config["database"] = settings.database_url.split(":", 1)[0].split("+", 1)[0]
    if not settings.signing_key_file.exists():  # else a crashed earlier init made it
        create_signing_key(settings.signing_key_file)
    if not settings.kek_file.exists():
        create_kek(settings.kek_file)
    # The config file is written last: a workspace only counts once its keys exist.
    atomic_write(home / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    workspace = Workspace.open(home, env)
    workspace.record("workspace.init", str(home), workspace_id=config["workspace_id"])
    return workspace
