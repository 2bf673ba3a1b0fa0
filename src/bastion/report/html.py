"""Self-contained HTML reports (no external assets: they open offline and in air-gapped sites)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from bastion._fs import atomic_write

__all__ = ["render_report"]

_ENV = Environment(
    loader=PackageLoader("bastion.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render_report(
    path: Path, *, title: str, subtitle: str, rows: Sequence[tuple[str, str, bool]]
) -> None:
    """Write a report of (step, detail, ok) rows to ``path`` atomically."""
    html = _ENV.get_template("report.html.j2").render(title=title, subtitle=subtitle, rows=rows)
    atomic_write(path, html.encode("utf-8"))
