"""State shared by every command: the chosen workspace, debug mode, the consoles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from bastion.catalog.workspace import Workspace

__all__ = ["State", "state", "workspace"]


@dataclass
class State:
    """Global options, set by the top-level callback."""

    home: Path | None = None
    debug: bool = False
    out: Console = field(default_factory=lambda: Console(soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))


def state(ctx: typer.Context) -> State:
    """The :class:`State` of this invocation."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def workspace(ctx: typer.Context) -> Workspace:
    """Open the workspace for this invocation; it is sealed and closed when the command ends."""
    from bastion.catalog.workspace import Workspace  # SQLAlchemy, Alembic: not for --help

    ws = Workspace.find(home=state(ctx).home)
    ctx.call_on_close(ws.close)
    return ws
