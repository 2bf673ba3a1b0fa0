"""``bastion scan``'s handler, and the command line it reads without Typer.

A scan is often a CI step or a pre-commit hook on a few files, so its start-up is most of its
time, and importing Typer (with its copy of click) and building the command tree took about as
long as scanning a directory of a thousand files. :func:`parse` therefore reads the command
lines a scan is normally given, with every option of ``bastion scan`` in Typer's spellings, and
answers ``None`` for anything else (``--help``, an unknown option, a value Typer would refuse,
options of the root command other than ``--debug``), which then goes to Typer: its messages and
exit codes stay the only ones. ``tests/cli/test_scan.py`` holds the two readings equal.

    >>> parse(["scan", "model.pt", "--format", "json"]).fmt
    <OutputFormat.JSON: 'json'>
    >>> parse(["scan", "model.pt", "--help"]) is None
    True
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bastion.cli._context import State
from bastion.cli._output import emit_findings
from bastion.findings import Severity
from bastion.report import OutputFormat
from bastion.scan import Policy, scan
from bastion.scan.engine import Progress as ProgressCallback

if TYPE_CHECKING:
    from bastion.report.html import Section
    from bastion.report.junit import Checked
    from bastion.scan.interface import ScanReport

__all__ = ["FORMAT_ENV", "ScanArgs", "parse", "run"]

FORMAT_ENV: Final = "BASTION_FORMAT"
"""The environment variable ``--format`` defaults to."""
_ONE_THREAD: Final = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Set to 1 (unless the user set them) before a scan from the command line: NumPy, imported
for h5py when a Keras or HDF5 file is met, starts a BLAS thread per core that spins for
about 0.1 s of CPU, on the cores the scan is using. The scanner does no linear algebra."""
_VALUED: Final = frozenset({"--format", "--fail-on", "--allow", "--policy", "--output"})
_FLAGS: Final = {"--digest": True, "--no-digest": False}


@dataclass(frozen=True, slots=True)
class ScanArgs:
    """What ``bastion scan`` was asked to do."""

    paths: tuple[Path, ...]
    """Files or directories, in the order given."""
    fmt: OutputFormat = OutputFormat.TABLE
    """``--format`` (else ``BASTION_FORMAT``, else a table)."""
    fail_on: str = "high"
    """``--fail-on``, as typed (:meth:`Severity.parse` judges it)."""
    allow: tuple[str, ...] = ()
    """Every ``--allow``, in order."""
    policy_file: Path | None = None
    """``--policy``."""
    output: Path | None = None
    """``--output``."""
    digest: bool = False
    """``--digest`` (the last of ``--digest`` / ``--no-digest`` counts)."""


def parse(args: Sequence[str]) -> ScanArgs | None:
    """``args`` read as ``bastion [--debug] scan ...``, or ``None`` when Typer should read them.

    Options may come before, between or after the paths, with their value as the next word or
    after ``=``; a repeated option counts its last value (``--allow``: every one), as in click.
    """
    words = list(args)
    while words and words[0] == "--debug":
        del words[0]
    if not words or words[0] != "scan":
        return None
    paths: list[Path] = []
    values: dict[str, str] = {}
    allow: list[str] = []
    digest = False
    rest = iter(words[1:])
    for word in rest:
        if not word.startswith("-"):
            if not word:
                return None  # click makes "" the current directory; Typer decides
            paths.append(Path(word))
            continue
        name, eq, value = word.partition("=")
        if name in _FLAGS and not eq:
            digest = _FLAGS[name]
            continue
        if name not in _VALUED:
            return None  # --help, --, unknown options and flags given a value
        if not eq:
            value = next(rest, "")
        if not value or value.startswith("-"):
            return None  # a missing value, or one click may read otherwise
        if name == "--allow":
            allow.append(value)
        else:
            values[name] = value
    fmt = values.get("--format") or os.environ.get(FORMAT_ENV) or OutputFormat.TABLE.value
    if not paths or fmt not in {f.value for f in OutputFormat}:
        return None
    policy, output = values.get("--policy"), values.get("--output")
    return ScanArgs(
        paths=tuple(paths), fmt=OutputFormat(fmt), fail_on=values.get("--fail-on", "high"),
        allow=tuple(allow), policy_file=Path(policy) if policy else None,
        output=Path(output) if output else None, digest=digest,
    )


def run(st: State, args: ScanArgs) -> int:
    """Scan, report, and return the exit code: 1 for findings at or above ``--fail-on``."""
    for name in _ONE_THREAD:  # this process and its workers only (the library sets nothing)
        os.environ.setdefault(name, "1")
    threshold = Severity.parse(args.fail_on)
    policy = Policy.default().allowing(args.allow)
    if args.policy_file is not None:
        policy = policy.with_file(args.policy_file)
    with _progress(st) as progress:
        report = scan(*args.paths, policy=policy, progress=progress, digest=args.digest)
    summary = {
        "source": " ".join(str(p) for p in args.paths),
        "elapsed_s": round(report.elapsed_s, 3),
        "files": [
            {"path": f.location.path, "member": f.location.member, "format": f.format.value,
             "size": f.size, "sha256": f.sha256}
            for f in report.files
        ],
    }
    return emit_findings(st, report.findings, tool="scan", fmt=args.fmt, fail_on=threshold,
                         output=args.output, summary=summary,
                         sections=lambda: _sections(report),  # jinja2 only for HTML
                         checked=lambda: _checked(report))  # xml.etree only for JUnit


def _checked(report: ScanReport) -> list[Checked]:
    """Every file scanned (archive members are reported through their file): a JUnit
    testcase each, passing when no finding is about it."""
    from bastion.report.junit import Checked

    return [Checked(f.location) for f in report.files if f.location.member is None]


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
