"""Entry point: ``bastion <group> <verb>``.

Exit codes: 0 clean, 1 findings at or above ``--fail-on``, 2 usage or runtime error.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from bastion import __version__
from bastion.cli import audit as audit_cli
from bastion.cli import bundle as bundle_cli
from bastion.cli import card as card_cli
from bastion.cli import catalog as catalog_cli
from bastion.cli import data as data_cli
from bastion.cli import demo as demo_cli
from bastion.cli import deps as deps_cli
from bastion.cli import init as init_cli
from bastion.cli import review as review_cli
from bastion.cli import scan as scan_cli
from bastion.cli import server as server_cli
from bastion.cli import token as token_cli
from bastion.cli._context import state
from bastion.cli._output import EXIT_ERROR
from bastion.errors import BastionError

__all__ = ["app", "main", "run"]

app = typer.Typer(
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


init_cli.register(app)
app.add_typer(audit_cli.app, name="audit")
app.add_typer(data_cli.app, name="data")
deps_cli.register(app)
app.add_typer(card_cli.app, name="card")
app.add_typer(token_cli.app, name="token")
demo_cli.register(app)
scan_cli.register(app)
catalog_cli.register(app)
review_cli.register(app)
bundle_cli.register(app)
server_cli.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code (tests call this directly)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="bastion", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.TyperException as exc:  # Typer's (vendored) click usage errors
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"bastion: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except typer.Abort:
        print("bastion: aborted", file=sys.stderr)
        return EXIT_ERROR
    except BastionError as exc:
        if debug:
            traceback.print_exc()
        print(f"bastion: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bastion: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: no traceback for users
        if debug:
            traceback.print_exc()
        print(
            f"bastion: internal error ({exc.__class__.__name__}); "
            "run again with --debug and report the traceback",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
