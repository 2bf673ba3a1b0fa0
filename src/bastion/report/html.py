"""Self-contained HTML reports (no external assets: they open offline and in air-gapped sites)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from bastion._fs import atomic_write
from bastion.findings import Finding

__all__ = ["Section", "render_report", "render_sections"]

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


@dataclass(frozen=True)
class Section:
    """One part of a sectioned report: a heading, a paragraph, PNG figures and tables."""

    heading: str
    """Section title."""
    text: str = ""
    """A paragraph (plain text, escaped)."""
    figures: Sequence[bytes] = ()
    """PNG images, embedded as data URIs so the report stays one offline file."""
    tables: Sequence[tuple[Sequence[str], Sequence[Sequence[object]]]] = ()
    """(header, rows) pairs."""


def render_sections(
    path: Path,
    *,
    title: str,
    subtitle: str,
    findings: Sequence[Finding],
    sections: Sequence[Section],
) -> None:
    """Write a report of findings followed by ``sections`` (used by ``bastion data``)."""
    figures = [[base64.b64encode(png).decode("ascii") for png in s.figures] for s in sections]
    html = _ENV.get_template("sections.html.j2").render(
        title=title, subtitle=subtitle,
        findings=sorted(findings, key=lambda f: (-f.severity.rank, f.rule)),
        sections=list(zip(sections, figures, strict=True)))
    atomic_write(path, html.encode("utf-8"))
