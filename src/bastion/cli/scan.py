"""``bastion scan``: scan model artifacts before anything loads them.

The command's Typer definition (options and help); the handler, and the reading of ordinary
command lines without Typer, are in :mod:`bastion.cli._scan`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.cli import _scan
from bastion.cli._context import state
from bastion.report import OutputFormat


def register(app: typer.Typer) -> None:
    """Add ``scan`` to ``app``."""
    app.command("scan")(scan_command)


def scan_command(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(help="Files or directories (scanned recursively).")
    ],
    fmt: Annotated[
        OutputFormat,
        typer.Option("--format", envvar=_scan.FORMAT_ENV,
                     help="table, json, sarif, junit (JUnit XML for CI test reporters), or html (a "
                          "self-contained page; needs --output)."),
    ] = OutputFormat.TABLE,
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 if any finding is at or above this severity.")
    ] = "high",
    allow: Annotated[
        list[str] | None,
        typer.Option(help="Also allow this global (module.name, module:name or module.*). "
                     "Repeatable. Only for code you trust."),
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option("--policy", help='TOML policy file:  allow = ["mypkg.MyModel", ...]'),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Write the report here.")] = None,
    digest: Annotated[
        bool,
        typer.Option(help="Also SHA-256 every file, binding the report to the exact bytes "
                     "(reads every byte, about 1 s per GB; the scan alone reads only what the "
                     "formats need)."),
    ] = False,
) -> None:
    """Scan model files without loading or executing them.

    Formats are recognised by content, not by name: pickle, PyTorch (zip,
    legacy), joblib, NumPy, Keras, HDF5, SavedModel, ONNX, safetensors, GGUF,
    Hugging Face chat templates, and zip/tar/7z/gzip/bzip2/xz containers.
    Pickles are interpreted symbolically; every import is checked against an
    allowlist (extend it with --allow or --policy, only for code you trust).

    Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage or error.

    Examples:  bastion scan model.pt --format sarif --output scan.sarif
               bastion scan models/ --format junit --output scan.xml
               bastion scan models/ --format html --output scan.html
    """
    args = _scan.ScanArgs(tuple(paths), fmt, fail_on, tuple(allow or ()), policy_file, output,
                          digest)
    raise typer.Exit(_scan.run(state(ctx), args))
