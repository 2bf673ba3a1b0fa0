"""Entry point: ``bastion <group> <verb>``.

Exit codes: 0 clean, 1 findings at or above ``--fail-on``, 2 usage or runtime error.

An ordinary ``bastion scan`` command line is read without importing Typer
(:func:`bastion.cli._scan.parse`); everything else goes to the Typer application
(:mod:`bastion.cli._root`, also reachable as ``bastion.cli.app.app``).
"""

from __future__ import annotations

import errno
import gc
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO, cast

from bastion.cli._context import State
from bastion.cli._output import EXIT_ERROR, hint_text
from bastion.errors import BastionError

if TYPE_CHECKING:
    import typer

    from bastion.cli import _scan

__all__ = ["app", "main", "run"]  # noqa: F822 - app is built on first use (__getattr__)

_SCAN_GC_THRESHOLD: Final = 50_000


def __getattr__(name: str) -> typer.Typer:
    """``app``, the Typer application, built on first use (PEP 562)."""
    if name == "app":
        from bastion.cli._root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` and return the exit code (tests call this directly)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        scan_args = _scan_args(args)
        if scan_args is not None:
            return _scan_main(scan_args, debug)
        return _typer_main(args)
    except BastionError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        print(f"bastion: error: {exc.message}", file=sys.stderr)
        hint = hint_text(exc)
        if hint:
            print(f"  hint: {hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bastion: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: no traceback for users
        if debug:
            import traceback

            traceback.print_exc()
        print(
            f"bastion: internal error ({exc.__class__.__name__}); "
            "run again with --debug and report the traceback",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _scan_main(args: _scan.ScanArgs, debug: bool) -> int:
    """``bastion scan`` run as Typer runs a command: Ctrl-C exits 130 quietly, end of input
    aborts, and a closed pipe exits 1 without a traceback."""
    from bastion.cli import _scan

    home = os.environ.get("BASTION_HOME")  # as the root option reads it (a scan needs none)
    try:
        return _scan.run(State(Path(home) if home else None, debug), args)
    except EOFError:
        print(file=sys.stderr)
        print("bastion: aborted", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        from typer._click.utils import PacifyFlushWrapper

        sys.stdout = cast(TextIO, PacifyFlushWrapper(sys.stdout))
        sys.stderr = cast(TextIO, PacifyFlushWrapper(sys.stderr))
        sys.exit(1)


def _typer_main(args: list[str]) -> int:
    """``args`` run by the Typer application; its usage errors, exits and aborts as codes."""
    import typer

    from bastion.cli._root import app

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
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script entry point.

    A scan's process collects cycles every :data:`_SCAN_GC_THRESHOLD` allocations rather than
    700 (as mypy does): the default spent about a twentieth of a scan re-examining the objects
    the scanners make; garbage cycles still go, a few MB later. And it skips Python's last
    collection on the way out, which would look at every object the scan made or imported
    (NumPy, h5py, Jinja, each finding) for another 20 ms: the scan has closed what it opened,
    and the OS takes the memory back.
    """
    args = sys.argv[1:]
    scanning = _scan_args(args) is not None
    if scanning:
        gc.set_threshold(_SCAN_GC_THRESHOLD, *gc.get_threshold()[1:])
    code = main(args)
    if scanning:
        gc.freeze()
    sys.exit(code)


def _scan_args(args: list[str]) -> _scan.ScanArgs | None:
    from bastion.cli import _scan

    return _scan.parse(args)
