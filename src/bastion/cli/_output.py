"""Emitting findings in the chosen format and turning them into an exit code."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion._fs import atomic_write
from bastion.cli._context import State
from bastion.errors import BastionError, UsageError
from bastion.findings import Finding, Severity, at_or_above
from bastion.report import OutputFormat
from bastion.report.json_out import dumps, findings_document
from bastion.report.sarif import sarif_document

if TYPE_CHECKING:
    from bastion.report.html import Section
    from bastion.report.junit import Checked

__all__ = [
    "EXIT_CLEAN",
    "EXIT_ERROR",
    "EXIT_FINDINGS",
    "emit_findings",
    "hint_text",
    "write_text",
]

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2


def hint_text(exc: BastionError) -> str | None:
    """The error's hint in command-line words: the argument it is about becomes its option
    (services name arguments, ``accept_risk``; only the CLI knows them as ``--accept-risk``)."""
    if exc.param is None:
        return exc.hint
    option = "--" + exc.param.replace("_", "-")
    return f"{exc.hint} ({option})" if exc.hint else f"see {option}"


def write_text(st: State, text: str, output: Path | None) -> None:
    """Data goes to ``--output`` (atomically) or to stdout."""
    if output is None:
        st.stdout.write(text if text.endswith("\n") else text + "\n")
        st.stdout.flush()
    else:
        atomic_write(output, text.encode("utf-8"))
        st.say(f"wrote {output}")


def emit_findings(
    st: State,
    findings: Sequence[Finding],
    *,
    tool: str,
    fmt: OutputFormat,
    fail_on: Severity,
    output: Path | None = None,
    summary: Mapping[str, Any] | None = None,
    sections: Callable[[], Sequence[Section]] | None = None,
    checked: Callable[[], Sequence[Checked]] | None = None,
) -> int:
    """Render ``findings`` and return 1 if any is at or above ``fail_on``, else 0.

    HTML (a self-contained page: the findings, then the tables and plots ``sections()``
    makes, only when HTML is asked for) is offered by the commands that pass ``sections``.
    JUnit XML has a testcase per finding and one per thing ``checked()`` lists that no
    finding concerns (called only for JUnit); ``summary["elapsed_s"]`` is its time.
    """
    if fmt is OutputFormat.TABLE:
        if output is not None:
            raise UsageError(f"--output needs --format {_formats(sections, table=False)}")
        if findings:
            from bastion.report.table import print_findings  # rich: only when there is a table

            print_findings(st.out, findings, title=f"bastion {tool}")
        else:
            write_text(st, f"bastion {tool}: no findings", None)
    elif fmt is OutputFormat.JSON:
        document = findings_document(findings, tool=tool, summary=summary)
        write_text(st, dumps(document), output)
    elif fmt is OutputFormat.SARIF:
        write_text(st, dumps(sarif_document(findings, tool=tool)), output)
    elif fmt is OutputFormat.JUNIT:
        from bastion.report.junit import junit_xml  # xml.etree: only for JUnit

        elapsed = (summary or {}).get("elapsed_s")
        write_text(st, junit_xml(findings, tool=tool, fail_on=fail_on,
                                 checked=checked() if checked is not None else (),
                                 elapsed_s=elapsed if isinstance(elapsed, int | float) else None),
                   output)
    elif fmt is OutputFormat.HTML and sections is not None:
        if output is None:
            raise UsageError("--format html needs --output FILE")
        from bastion.report.html import render_sections

        render_sections(output, title=f"bastion {tool}", subtitle=str((summary or {}).get(
            "source", "")), findings=findings, sections=sections())
        st.say(f"wrote {output}")
    else:
        raise UsageError(f"--format {fmt.value} is not available for {tool}",
                         hint=f"use {_formats(sections, table=True)}")
    failing = at_or_above(findings, fail_on)
    if failing:
        st.say(f"{len(failing)} finding(s) at or above {fail_on.value} (--fail-on): exit 1")
        return EXIT_FINDINGS
    return EXIT_CLEAN


def _formats(sections: object, *, table: bool) -> str:
    """The formats :func:`emit_findings` offers a command, in words."""
    names = [f.value for f in OutputFormat
             if (table or f is not OutputFormat.TABLE)
             and (sections is not None or f is not OutputFormat.HTML)]
    return ", ".join(names[:-1]) + " or " + names[-1]
