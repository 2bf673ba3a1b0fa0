"""``bastion audit``: read, verify and seal the audit log."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bastion._time import utc_stamp
from bastion.cli._context import state, workspace
from bastion.cli._output import emit_findings, write_text
from bastion.errors import UsageError
from bastion.findings import Severity
from bastion.report import OutputFormat

app = typer.Typer(
    help="Read, verify and seal the hash-chained audit log (NCSC 2.3, 2.4, 3.2).",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    """Add the ``audit`` group to the root app."""
    root.add_typer(app, name="audit")

_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str) -> str:
    """An ISO date/time or a duration (``30m``, ``12h``, ``7d``, ``2w``) as a UTC timestamp."""
    match = _DURATION.match(text.strip())
    if match:
        moment = datetime.now(UTC) - timedelta(**{_UNITS[match[2]]: int(match[1])})
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise UsageError(
                f"--since {text!r} is neither a date nor a duration",
                hint="use e.g. 2026-11-01, 2026-11-01T09:30, 12h or 7d",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return utc_stamp(moment)


@app.command("log")
def log(
    ctx: typer.Context,
    subject: Annotated[str | None, typer.Option(help="Only entries about this subject.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action; 'model.*' matches a prefix.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only entries by this actor.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only entries since a date/time or a duration (7d, 12h).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the newest N entries.")] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="table or json.")
    ] = OutputFormat.TABLE,
    output: Annotated[Path | None, typer.Option(help="Write JSON here instead of stdout.")] = None,
) -> None:
    """Show audit entries, oldest first."""
    st = state(ctx)
    ws = workspace(ctx)
    entries = ws.audit.entries(
        subject=subject,
        action=action,
        actor=actor,
        since=parse_since(since) if since else None,
        limit=limit,
    )
    if fmt is OutputFormat.JSON:
        write_text(st, json.dumps([e.to_dict() for e in entries], indent=2), output)
        return
    if fmt is not OutputFormat.TABLE:
        raise UsageError(
            f"--format {fmt.value} is not available for 'audit log'", hint="use table or json"
        )
    table = Table(title=f"audit log ({len(entries)} entries)")
    for column in ("#", "time (UTC)", "actor", "action", "subject", "details"):
        table.add_column(column, overflow="fold")
    for e in entries:
        details = json.dumps(dict(e.details), sort_keys=True)
        table.add_row(
            str(e.seq),
            e.at[:19].replace("T", " "),
            e.actor,
            e.action,
            e.subject,
            details if len(details) < 120 else details[:117] + "…",
        )
    st.out.print(table)


@app.command("verify")
def verify(
    ctx: typer.Context,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="table, json or sarif.")
    ] = OutputFormat.TABLE,
    output: Annotated[Path | None, typer.Option(help="Write the report here.")] = None,
) -> None:
    """Verify the whole chain and every signed checkpoint; name each entry that does not match.

    Exit 0 when intact, 1 when anything was modified, deleted, inserted, reordered or truncated.
    """
    st = state(ctx)
    ws = workspace(ctx)
    result = ws.audit.verify()
    findings = result.findings(str(ws.settings.home))
    if fmt is OutputFormat.TABLE and result.ok:
        st.out.print(
            f"[green]audit chain intact[/green]: {result.entries} entries, "
            f"{result.checkpoints} signed checkpoint(s), sealed through #{result.sealed_through}"
            + (f", {result.unsealed} newer entries not yet sealed" if result.unsealed else "")
        )
        raise typer.Exit(0)
    summary = {
        "entries": result.entries,
        "checkpoints": result.checkpoints,
        "sealed_through": result.sealed_through,
        "ok": result.ok,
    }
    raise typer.Exit(
        emit_findings(
            st,
            findings,
            tool="audit verify",
            fmt=fmt,
            fail_on=Severity.HIGH,
            output=output,
            summary=summary,
        )
    )


@app.command("checkpoint")
def checkpoint(ctx: typer.Context) -> None:
    """Sign the current head of the chain now (commands also do this when they finish)."""
    ws = workspace(ctx)
    sealed = ws.audit.checkpoint()
    state(ctx).err.print(f"audit chain sealed through #{sealed}")
