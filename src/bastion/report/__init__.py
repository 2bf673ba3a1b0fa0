"""Renderers for findings: a table for people (``table``), JSON (``json_out``), SARIF 2.1.0
(``sarif``) and JUnit XML (``junit``, for CI test reporters) for machines, and a self-contained
HTML page (``html``). ``bastion.cli._output.emit_findings`` picks one by ``--format``."""

from __future__ import annotations

import enum


class OutputFormat(enum.StrEnum):
    """Report formats a command can emit (``--format``)."""

    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"
    HTML = "html"


__all__ = ["OutputFormat"]
