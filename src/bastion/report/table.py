"""Findings as a table for people (rich), worst first."""

from __future__ import annotations

from collections.abc import Iterable

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


def print_findings(console: Console, findings: Iterable[Finding], *, title: str) -> None:
    """Print one row per finding: severity, rule, where, what, principle and ATLAS ids."""
    items = sorted(findings, key=lambda f: (-f.severity.rank, str(f.location or ""), f.rule))
    if not items:
        console.print(f"[green]{title}: no findings[/green]")
        return
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("where", overflow="fold")
    table.add_column("what", overflow="fold")
    table.add_column("NCSC", no_wrap=True)
    table.add_column("ATLAS", no_wrap=True)
    for f in items:
        table.add_row(
            f"[{SEVERITY_STYLE[f.severity]}]{f.severity.value}[/]",
            f.rule,
            str(f.location) if f.location else "",
            f.title + (f"\n[dim]{f.detail}[/dim]" if f.detail else ""),
            f.principle.number,
            " ".join(f.techniques),
        )
    console.print(table)
