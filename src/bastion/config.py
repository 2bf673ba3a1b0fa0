"""Where the workspace is and which settings are in force.

Settings come, in order of precedence, from the environment (``BASTION_*``), the workspace's
``config.yaml``, then defaults. The workspace is found like git finds a repository: ``--home`` or
``BASTION_HOME`` first, else the nearest ``.bastion/`` walking up from the current directory.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from bastion.errors import ConfigError, WorkspaceError

__all__ = ["WORKSPACE_DIR", "Settings", "find_workspace", "load_settings"]

WORKSPACE_DIR: Final = ".bastion"
CONFIG_FILE: Final = "config.yaml"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a command needs to know about its environment."""

    home: Path
    """The workspace directory (the ``.bastion`` folder itself)."""
    database_url: str
    """SQLAlchemy URL: SQLite in the workspace unless ``BASTION_DATABASE_URL`` says otherwise."""
    blob_url: str
    """Where encrypted blobs live: a directory path (``file://`` or plain)."""
    redis_url: str | None
    """Redis for shared gateway state; ``None`` keeps that state in memory."""
    kek_file: Path
    """The key-encryption key (0600)."""
    signing_key_file: Path
    """The workspace's EC P-256 signing key (0600)."""
    actor: str
    """Who is acting, as recorded in the audit log."""
    checkpoint_every: int
    """Seal the audit chain with a signed checkpoint at least every N entries."""

    @property
    def config_file(self) -> Path:
        """The workspace's ``config.yaml``."""
        return self.home / CONFIG_FILE

    @property
    def checkpoint_file(self) -> Path:
        """Out-of-database copy of the newest signed audit checkpoint."""
        return self.home / "audit-checkpoint.json"


def find_workspace(start: Path | None = None, home: str | os.PathLike[str] | None = None) -> Path:
    """Return the workspace directory, or raise :class:`WorkspaceError` saying how to make one."""
    explicit = home if home is not None else os.environ.get("BASTION_HOME")
    if explicit:
        path = Path(explicit).expanduser().resolve()
        for candidate in (path, path / WORKSPACE_DIR):
            if (candidate / CONFIG_FILE).is_file():
                return candidate
        raise WorkspaceError(
            f"no Bastion workspace at {path}",
            hint=f"run 'bastion init {path}' first, or point --home/BASTION_HOME at a workspace",
        )
    here = (start or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / WORKSPACE_DIR
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise WorkspaceError(
        f"no Bastion workspace in {here} or any parent directory",
        hint="run 'bastion init' here, or pass --home / set BASTION_HOME",
    )


def read_config(home: Path) -> dict[str, Any]:
    """Parse ``config.yaml``; a malformed file is a :class:`ConfigError` naming the file."""
    path = home / CONFIG_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot read {path}: {exc.__class__.__name__}",
            hint="fix the YAML or restore it from 'bastion init' defaults",
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def load_settings(
    home: Path, env: Mapping[str, str] | None = None, *, config: Mapping[str, Any] | None = None
) -> Settings:
    """Combine environment, ``config.yaml`` and defaults for the workspace at ``home``."""
    env = os.environ if env is None else env
    config = read_config(home) if config is None else config
    database_url = (
        env.get("BASTION_DATABASE_URL")
        or config.get("database_url")
        or (f"sqlite:///{home / 'bastion.db'}")
    )
    if config.get("database") == "postgresql" and str(database_url).startswith("sqlite"):
        raise ConfigError(
            "this workspace keeps its catalog in PostgreSQL but BASTION_DATABASE_URL is not set",
            hint="export BASTION_DATABASE_URL=postgresql+psycopg://USER@HOST/DB",
        )
    blob_url = env.get("BASTION_BLOB_URL") or config.get("blob_url") or str(home / "blobs")
    kek_file = Path(env.get("BASTION_KEK_FILE") or config.get("kek_file") or home / "keys" / "kek")
    every = (
        config.get("audit", {}).get("checkpoint_every", 256)
        if isinstance(config.get("audit"), dict)
        else 256
    )
    if not isinstance(every, int) or every < 1:
        raise ConfigError(
            f"audit.checkpoint_every must be a positive integer, not {every!r}",
            hint=f"edit {home / CONFIG_FILE}",
        )
    return Settings(
        home=home,
        database_url=str(database_url),
        blob_url=str(blob_url),
        redis_url=env.get("BASTION_REDIS_URL") or config.get("redis_url"),
        kek_file=kek_file,
        signing_key_file=home / "keys" / "signing.pem",
        actor=env.get("BASTION_ACTOR") or _os_user(),
        checkpoint_every=every,
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
