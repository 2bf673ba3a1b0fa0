"""``bastion deps``: audit dependencies against an offline OSV database (NCSC 2.3)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bastion import deps
from bastion.catalog.cards import DisclosureLevel
from bastion.cli._context import State, state, workspace
from bastion.cli._output import emit_findings, write_text
from bastion.config import find_workspace
from bastion.errors import UsageError, WorkspaceError
from bastion.findings import Location, Severity
from bastion.report import OutputFormat
from bastion.store.workspace import Workspace

if TYPE_CHECKING:
    from bastion.report.junit import Checked

app = typer.Typer(
    help="Audit Python dependencies against an OSV advisory database, offline (NCSC 2.3).\n\n"
    "Import advisories once with 'bastion deps db import PATH', then 'bastion deps audit'.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="Import and inspect the offline OSV database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

_DB_HELP = "Index file to use instead of the workspace's .bastion/osv/index.sqlite."


def _open_workspace(st: State, db: Path | None) -> Workspace | None:
    """The workspace, which must exist unless --db says where the index is."""
    try:
        home = find_workspace(home=st.home)
    except WorkspaceError:
        if db is None:
            raise
        st.err.print("[dim]no workspace: this run is not recorded in an audit log[/dim]")
        return None
    return Workspace.open(home)


def _index(ws: Workspace | None, db: Path | None) -> Path:
    if db is not None:
        return db
    if ws is None:  # _open_workspace raised already; kept for the type checker
        raise WorkspaceError("no workspace and no --db")
    return deps.index_path(ws.settings.home)


@db_app.command("import")
def db_import(
    ctx: typer.Context,
    source: Annotated[
        Path, typer.Argument(help="A directory of OSV records (JSON or YAML) or an OSV all.zip.")
    ],
    db: Annotated[Path | None, typer.Option(help=_DB_HELP)] = None,
) -> None:
    """Import OSV advisories for PyPI packages into the offline index (replaced atomically).

    Example: bastion deps db import advisory-database/vulns
    """
    st = state(ctx)
    ws = _open_workspace(st, db)
    try:
        info = deps.import_database(source, _index(ws, db), workspace=ws)
    finally:
        if ws is not None:
            ws.close()
    st.err.print(
        f"imported {info.records} PyPI advisories from {source} into {info.location}; "
        f"newest modified {info.newest_modified.isoformat() if info.newest_modified else '?'}"
    )


@db_app.command("info")
def db_info(
    ctx: typer.Context,
    db: Annotated[Path | None, typer.Option(help=_DB_HELP)] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="table or json.")] = (
        OutputFormat.TABLE
    ),
) -> None:
    """Show where the offline database came from and how old it is."""
    st = state(ctx)
    path = db if db is not None else deps.index_path(find_workspace(home=st.home))
    index = deps.LocalIndex.open(path)
    try:
        data = index.info().to_dict(datetime.now(UTC))
    finally:
        index.close()
    if fmt is OutputFormat.JSON:
        write_text(st, json.dumps(data, indent=2), None)
    elif fmt is OutputFormat.TABLE:
        for key, value in data.items():
            st.out.print(f"{key:16} {value}")
    else:
        raise UsageError(f"--format {fmt.value} is not available here", hint="use table or json")


@app.command("audit")
def audit(
    ctx: typer.Context,
    requirements: Annotated[
        list[Path] | None,
        typer.Option("--requirements", "-r", help="A pip requirements file (repeatable)."),
    ] = None,
    pyproject: Annotated[
        Path | None, typer.Option(help="A pyproject.toml: [project] dependencies and extras.")
    ] = None,
    lockfile: Annotated[
        Path | None, typer.Option(help="poetry.lock, uv.lock, pylock.toml or Pipfile.lock.")
    ] = None,
    python: Annotated[
        Path | None,
        typer.Option(help="Audit what this interpreter has installed (read, not imported)."),
    ] = None,
    site_packages: Annotated[
        list[Path] | None,
        typer.Option("--site-packages", help="Audit the distributions in this directory."),
    ] = None,
    db: Annotated[Path | None, typer.Option(help=_DB_HELP)] = None,
    osv_url: Annotated[
        str | None,
        typer.Option(
            "--osv-url",
            envvar="BASTION_OSV_URL",
            help="Ask an OSV-compatible API (base URL) instead of the offline database.",
        ),
    ] = None,
    fmt: Annotated[
        OutputFormat,
        typer.Option("--format", envvar="BASTION_FORMAT",
                     help="table, json, sarif or junit (JUnit XML for CI test reporters)."),
    ] = OutputFormat.TABLE,
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 when a finding is at or above this severity.")
    ] = "high",
    max_age: Annotated[
        float,
        typer.Option(
            envvar="BASTION_DEPS_MAX_AGE",
            min=0,
            help="Warn (medium finding) when the newest advisory is older than this many days.",
        ),
    ] = deps.DEFAULT_MAX_AGE_DAYS,
    output: Annotated[Path | None, typer.Option(help="Write the report here.")] = None,
) -> None:
    """Audit requirements, a project, a lockfile or an environment for known vulnerabilities.

    With no input, audits the environment Bastion runs in.

    A package without one exact version is a finding (high), never a silent pass.

    Every report states the database's age (newest advisory, import time).

    Exit 0 clean, 1 findings at or above --fail-on, 2 usage or runtime error.

    Example: bastion deps audit -r requirements.txt --format sarif --output deps.sarif

    CI: bastion deps audit -r requirements.txt --format junit --output deps.xml
    """
    st = state(ctx)
    threshold = Severity.parse(fail_on)
    packages = deps.collect(
        requirements=requirements or (),
        pyproject=pyproject,
        lockfile=lockfile,
        python=python,
        site_packages=site_packages or (),
    )
    ws = None if osv_url else _open_workspace(st, db)
    try:
        if osv_url:
            report = deps.audit(packages, deps.OsvApi(osv_url), max_age_days=max_age)
        else:
            index = deps.LocalIndex.open(_index(ws, db))
            try:
                report = deps.audit(packages, index, max_age_days=max_age, workspace=ws)
            finally:
                index.close()
    finally:
        if ws is not None:
            ws.close()
    summary = report.summary()
    st.err.print(
        f"audited {summary['packages']} package(s): {summary['vulnerable_packages']} vulnerable, "
        f"{summary['unresolved_packages']} unresolved"
    )
    raise typer.Exit(
        emit_findings(
            st,
            report.findings,
            tool="deps audit",
            fmt=fmt,
            fail_on=threshold,
            output=output,
            summary=summary,
            checked=lambda: _checked(report),
        )
    )


def _checked(report: deps.DepsReport) -> list[Checked]:
    """Every package audited: a JUnit testcase each, passing when no finding is about it."""
    from bastion.report.junit import Checked

    return [Checked(Location(p.source, p.name), name=str(Location(p.source, str(p))))
            for p in report.packages]


def register(app_: typer.Typer) -> None:
    """Add ``deps`` and ``bom`` to the root app."""
    app_.add_typer(app, name="deps")
    app_.command("bom")(bom)


def bom(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="A registered model version: NAME@VERSION.")],
    level: Annotated[
        DisclosureLevel, typer.Option(help="Who the BOM is for: internal or public (NCSC 1.3).")
    ] = DisclosureLevel.INTERNAL,
    python: Annotated[
        Path | None,
        typer.Option(
            help="Describe this interpreter's environment now, instead of the one recorded "
            "when the model was registered."
        ),
    ] = None,
    no_environment: Annotated[
        bool, typer.Option("--no-environment", help="Leave the software environment out.")
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Write the BOM here.")] = None,
) -> None:
    """A CycloneDX 1.6 bill of materials (ML-BOM) for a registered model version.

    Holds the model (card, file hashes), its datasets, and the software environment recorded
    when the model was registered (or, with --python, another interpreter's as it is now).

    Validated against CycloneDX's JSON schema before it is written.

    Example: bastion bom digits@2 --output digits-2.cdx.json
    """
    from bastion.catalog.bom import bom_for  # heavy; only this command needs them
    from bastion.catalog.service import Catalog

    st = state(ctx)
    ws = workspace(ctx)
    environment = deps.from_environment(python) if python and not no_environment else None
    document = bom_for(
        Catalog(ws),
        ref,
        environment=environment,
        captured="export" if environment is not None else "registration",
        level=level,
        include_environment=not no_environment,
    )
    ws.record(
        "model.bom",
        ref,
        level=level.value,
        serial=document["serialNumber"],
        environment="none" if no_environment else ("export" if python else "registration"),
    )
    write_text(st, json.dumps(document, indent=2), output)
