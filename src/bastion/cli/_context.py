"""State shared by every command: the chosen workspace, debug mode, the consoles."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # Typer only for the annotations: a plain scan runs without it
    import typer
    from rich.console import Console

    from bastion.catalog.api import CatalogAPI
    from bastion.store.workspace import Workspace

__all__ = ["State", "catalog", "state", "workspace"]


class State:
    """Global options, set by the top-level callback, and the consoles.

    The rich consoles are made on first use: a clean scan or a JSON report never imports rich
    (a quarter of the command's start-up).
    """

    def __init__(self, home: Path | None = None, debug: bool = False,
                 out: Console | None = None, err: Console | None = None) -> None:
        self.home, self.debug = home, debug
        self._out, self._err = out, err

    @property
    def out(self) -> Console:
        """Standard output, for tables and other rich text."""
        if self._out is None:
            from rich.console import Console

            self._out = Console(soft_wrap=True)
        return self._out

    @property
    def err(self) -> Console:
        """Standard error, for messages to people."""
        if self._err is None:
            from rich.console import Console

            self._err = Console(stderr=True, soft_wrap=True)
        return self._err

    def say(self, text: str) -> None:
        """One line for people on standard error, as plain text (never read as rich markup).

        Through the error console once one is made or when standard error is a terminal (where
        rich highlights it); otherwise written directly, without importing rich: a scan that
        writes a report to ``--output`` ends with this line.
        """
        if self._err is None and not sys.stderr.isatty():
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        else:
            self.err.print(text, markup=False)

    @property
    def stdout(self) -> IO[str]:
        """Where data goes: the output console's file, without making a console for it."""
        return self._out.file if self._out is not None else sys.stdout

    @property
    def err_is_terminal(self) -> bool:
        """Whether messages go to a terminal (progress bars only appear there)."""
        return self._err.is_terminal if self._err is not None else sys.stderr.isatty()


def state(ctx: typer.Context) -> State:
    """The :class:`State` of this invocation."""
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def workspace(ctx: typer.Context) -> Workspace:
    """Open the workspace for this invocation; it is sealed and closed when the command ends."""
    from bastion.store.workspace import Workspace  # SQLAlchemy, Alembic: not for --help

    ws = Workspace.find(home=state(ctx).home)
    ctx.call_on_close(ws.close)
    return ws


def catalog(ctx: typer.Context) -> CatalogAPI:
    """The catalog server ``BASTION_URL`` names, else this invocation's workspace's catalog."""
    from bastion.client.remote import RemoteCatalog

    remote = RemoteCatalog.from_env()
    if remote is not None:
        ctx.call_on_close(remote.close)
        return remote
    from bastion.catalog.service import Catalog

    return Catalog(workspace(ctx))
