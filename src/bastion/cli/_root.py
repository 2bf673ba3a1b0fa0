"""The Typer application: the root command, its options, and the lazily loaded command groups.

Imported only when a command line needs Typer (:func:`bastion.cli.app.main` reads an ordinary
``bastion scan`` without it).
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from typing import Annotated, Final

import typer
from typer._click import core as click_core  # Typer's own (vendored) click
from typer.core import TyperGroup

from bastion import __version__
from bastion.cli._context import state

__all__ = ["app"]

# Command → the module under bastion.cli that defines it, in the order --help lists them.
# A command's module is imported only when that command runs (or for --help), so each command
# starts without the libraries of all the others.
_OWNER: Final = {
    "init": "init",
    "demo": "demo",
    "scan": "scan",
    "data": "data",
    "assess": "assess",
    "model": "catalog",
    "dataset": "catalog",
    "list": "catalog",
    "show": "catalog",
    "lineage": "catalog",
    "get": "catalog",
    "verify": "catalog",
    "fsck": "catalog",
    "review": "review",
    "alias": "review",
    "rollback": "review",
    "grant": "review",
    "card": "card",
    "export": "bundle",
    "import": "bundle",
    "deps": "deps",
    "bom": "deps",
    "audit": "audit",
    "server": "server",
    "token": "token",
}


@functools.cache
def _commands_of(module: str) -> dict[str, click_core.Command]:
    """The click commands that ``bastion.cli.<module>``'s ``register(app)`` adds."""
    sub = typer.Typer()
    importlib.import_module(f"bastion.cli.{module}").register(sub)
    return dict(typer.main.get_group(sub).commands)


class _LazyGroup(TyperGroup):
    """The root group: resolves each command by importing only the module that defines it."""

    def list_commands(self, ctx: click_core.Context) -> list[str]:
        return list(_OWNER)

    def get_command(self, ctx: click_core.Context, cmd_name: str) -> click_core.Command | None:
        module = _OWNER.get(cmd_name)
        return _commands_of(module).get(cmd_name) if module else None


app = typer.Typer(
    cls=_LazyGroup,
    name="bastion",
    help=(
        "Secure ML assets across their life, following the UK NCSC Principles for the "
        "security of machine learning.\n\n"
        "Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or runtime error."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bastion {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="BASTION_HOME",
            help="Workspace to use (default: the nearest .bastion/ above the current directory).",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    st = state(ctx)
    st.home, st.debug = home, debug
