"""Findings as a table for people (rich), worst first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from rich.console import Console
from rich.table import Table

from bastion.findings import Finding, Severity

__all__ = ["SEVERITY_STYLE", "print_findings"]

SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
WIDE: Final = 140
"""Consoles at least this wide get a column each for rule, principle and ATLAS ids; narrower
ones (80 columns, or output piped to a file) fold them under the title, so where and what a
finding is never shrink to nothing."""


def print_findings(console: Console, findings: Iterable[Finding], *, title: str) -> None:
    """Print one row per finding: severity, where, what, rule, principle and ATLAS ids."""
    items = sorted(findings, key=lambda f: (-f.severity.rank, str(f.location or ""), f.rule))
    if not items:
        console.print(f"[green]{title}: no findings[/green]")
        return
    wide = console.width >= WIDE
    table = Table(title=title, show_lines=not wide, expand=False)
    table.add_column("severity", no_wrap=True)
    if wide:
        table.add_column("rule", no_wrap=True)
    table.add_column("where", overflow="fold", ratio=1, min_width=12)
    table.add_column("what", overflow="fold", ratio=2, min_width=24)
    if wide:
        table.add_column("NCSC", no_wrap=True)
        table.add_column("ATLAS", no_wrap=True)
    for f in items:
        what = f.title + (f"\n[dim]{f.detail}[/dim]" if f.detail else "")
        where = str(f.location) if f.location else ""
        severity = f"[{SEVERITY_STYLE[f.severity]}]{f.severity.value}[/]"
        if wide:
            table.add_row(severity, f.rule, where, what, f.principle.number,
                          " ".join(f.techniques))
        else:
            ids = " · ".join(x for x in (f.rule, f"NCSC {f.principle.number}",
                                         " ".join(f.techniques)) if x)
            table.add_row(severity, where, f"{what}\n[cyan]{ids}[/cyan]")
    console.print(table)
