"""``bastion scan``: scan model artifacts before anything loads them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bastion.cli._context import State, state
from bastion.cli._output import emit_findings
from bastion.findings import Severity
from bastion.report import OutputFormat
from bastion.scan import Policy, scan
from bastion.scan.engine import Progress as ProgressCallback

if TYPE_CHECKING:
    from bastion.report.html import Section
    from bastion.scan.interface import ScanReport


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
        typer.Option("--format", envvar="BASTION_FORMAT",
                     help="table, json, sarif, or html (a self-contained page; needs --output)."),
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
               bastion scan models/ --format html --output scan.html
    """
    st = state(ctx)
    threshold = Severity.parse(fail_on)
    policy = Policy.default().allowing(allow or [])
    if policy_file is not None:
        policy = policy.with_file(policy_file)
    with _progress(st) as progress:
        report = scan(*paths, policy=policy, progress=progress, digest=digest)
    summary = {
        "source": " ".join(str(p) for p in paths),
        "elapsed_s": round(report.elapsed_s, 3),
        "files": [
            {"path": f.location.path, "member": f.location.member, "format": f.format.value,
             "size": f.size, "sha256": f.sha256}
            for f in report.files
        ],
    }
    raise typer.Exit(emit_findings(st, report.findings, tool="scan", fmt=fmt, fail_on=threshold,
                                   output=output, summary=summary,
                                   sections=lambda: _sections(report)))  # jinja2 only for HTML


def _sections(report: ScanReport) -> list[Section]:
    """The HTML report's body after the findings: formats found, then every file scanned."""
    from bastion.report.html import Section

    formats = Counter(f.format.value for f in report.files)
    files = [(f.location.path, f.location.member or "", f.format.value, f.size, f.sha256 or "")
             for f in report.files]
    return [
        Section("Formats", f"{len(report.files)} files and archive members in "
                f"{report.elapsed_s:.2f} s; formats recognised by content.",
                tables=[(("format", "count"), formats.most_common())]),
        Section("Files", "Every file and archive member scanned.",
                tables=[(("path", "member", "format", "bytes", "SHA-256 (--digest)"), files)]),
    ]


@contextmanager
def _progress(st: State) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on a terminal; nothing in pipes."""
    if not st.err_is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("scanning", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=st.err, transient=True) as bar:
        task = bar.add_task("scan", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
