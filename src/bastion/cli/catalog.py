"""``bastion model|dataset add``, ``list``, ``show``, ``lineage``, ``get``, ``verify``, ``fsck``.

Parse, call :class:`bastion.catalog.service.Catalog`, render. Exit codes: 0 clean, 1 findings
(registration refused by the scan gate, verification or fsck found damage), 2 usage or runtime
error.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bastion.catalog.cards import CardKind, load_card
from bastion.catalog.records import (
    Kind,
    LineageNode,
    RegistrationRefusedError,
    Status,
    VersionInfo,
    VersionSummary,
)
from bastion.cli._context import State, catalog, state
from bastion.cli._output import EXIT_CLEAN, EXIT_FINDINGS, emit_findings, hint_text, write_text
from bastion.findings import Severity
from bastion.report import OutputFormat

__all__ = ["register"]


class Format(enum.StrEnum):
    """Output of catalog commands."""

    TABLE = "table"
    JSON = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", envvar="BASTION_FORMAT", help="table or json.")
]
RefArgument = Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")]
CardOption = Annotated[
    Path | None,
    typer.Option(help="Card file: YAML, JSON or Markdown with Hugging Face front matter."),
]
RiskOption = Annotated[
    str | None,
    typer.Option(
        "--accept-risk",
        help="Register despite findings at or above high; the reason is recorded in the card, "
        "the findings and the audit log.",
    ),
]
SensitivityOption = Annotated[
    str | None,
    typer.Option(
        help="public, internal, confidential or restricted (new assets; default "
        "internal or the card's)."
    ),
]
SigningKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--signing-key",
        help="Sign with your own EC P-256 private key instead of the workspace key: an "
        "unencrypted PKCS#8 PEM file of mode 0600 (make one with 'openssl genpkey -algorithm "
        "EC -pkeyopt ec_paramgen_curve:P-256 -out me.pem'). It is only read; the catalog "
        "records its public half, which verify, get, export and import then check against.",
    ),
]

model_app = typer.Typer(help="Register models in the catalog.", no_args_is_help=True)
dataset_app = typer.Typer(help="Register datasets in the catalog.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the catalog commands to ``app``."""
    app.add_typer(model_app, name="model")
    app.add_typer(dataset_app, name="dataset")
    for name, command in (
        ("list", list_versions),
        ("show", show),
        ("lineage", lineage),
        ("get", get),
        ("verify", verify),
        ("fsck", fsck),
    ):
        app.command(name)(command)


def busy(st: State, what: str) -> contextlib.AbstractContextManager[object]:
    """A spinner on a terminal; nothing in pipes and logs."""
    return st.err.status(what) if st.err_is_terminal else contextlib.nullcontext()


@model_app.command("add")
def add_model(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Asset name; a new version if it exists.")],
    path: Annotated[Path, typer.Argument(help="A file or a directory of files.")],
    card: CardOption = None,
    trained_on: Annotated[
        list[str] | None,
        typer.Option("--trained-on", help="DATASET@VERSION it was trained on (repeatable)."),
    ] = None,
    derived_from: Annotated[
        str | None, typer.Option("--derived-from", help="MODEL@VERSION it was fine-tuned from.")
    ] = None,
    evaluated_on: Annotated[
        list[str] | None,
        typer.Option("--evaluated-on", help="DATASET@VERSION it was evaluated on (repeatable)."),
    ] = None,
    accept_risk: RiskOption = None,
    sensitivity: SensitivityOption = None,
    signing_key: SigningKeyOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Register a model version: scan, hash, encrypt, sign, record lineage, audit.

    Refuses (exit 1, nothing stored) when the scan finds anything at or above high, unless
    --accept-risk gives a reason. The manifest is signed with the workspace key, or with your
    own key: bastion model add digits model.joblib --signing-key ~/.keys/me.pem
    """
    loaded = load_card(card, kind=CardKind.MODEL) if card else None
    _register(
        state(ctx),
        name,
        fmt,
        lambda: catalog(ctx).add_model(
            name,
            path,
            card=loaded,
            trained_on=trained_on or (),
            derived_from=derived_from,
            evaluated_on=evaluated_on or (),
            accept_risk=accept_risk,
            sensitivity=sensitivity,
            signing_key=signing_key,
        ),
    )


@dataset_app.command("add")
def add_dataset(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Asset name; a new version if it exists.")],
    path: Annotated[Path, typer.Argument(help="A file or a directory of files.")],
    card: CardOption = None,
    derived_from: Annotated[
        str | None, typer.Option("--derived-from", help="DATASET@VERSION it was derived from.")
    ] = None,
    accept_risk: RiskOption = None,
    sensitivity: SensitivityOption = None,
    signing_key: SigningKeyOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Register a dataset version: scan, hash, encrypt, sign, audit.

    Signed with the workspace key, or with your own: --signing-key FILE (see its help).
    """
    loaded = load_card(card, kind=CardKind.DATASET) if card else None
    _register(
        state(ctx),
        name,
        fmt,
        lambda: catalog(ctx).add_dataset(
            name,
            path,
            card=loaded,
            derived_from=derived_from,
            accept_risk=accept_risk,
            sensitivity=sensitivity,
            signing_key=signing_key,
        ),
    )


def _register(st: State, name: str, fmt: Format, add: Callable[[], VersionInfo]) -> None:
    """Run one registration with a spinner; a scan refusal exits 1 with its findings."""
    try:
        with busy(st, f"registering {name}: scan, hash, encrypt, sign…"):
            info = add()
    except RegistrationRefusedError as exc:
        raise typer.Exit(_refused(st, exc)) from None
    _emit_added(st, info, fmt)


def _refused(st: State, exc: RegistrationRefusedError) -> int:
    if exc.findings:
        emit_findings(
            st, exc.findings, tool="catalog add", fmt=OutputFormat.TABLE, fail_on=Severity.HIGH
        )
    st.err.print(f"bastion: refused: {exc.message}")
    hint = hint_text(exc)
    if hint:
        st.err.print(f"  hint: {hint}")
    return EXIT_FINDINGS


def _emit_added(st: State, info: VersionInfo, fmt: Format) -> None:
    if fmt is Format.JSON:
        write_text(st, json.dumps(info.to_dict(), indent=2), None)
        return
    s = info.summary
    st.out.print(
        f"registered {s.ref} ({s.kind.value}, {s.files} file(s), {_size(s.size)}) "
        f"status {s.status.value}"
    )
    st.out.print(f"  manifest sha256 {s.digest}")
    st.out.print(
        f"  signed with key {info.key_id[:16]}…, {len(info.findings)} finding(s)"
        + (f", risk accepted: {info.accepted_risk}" if info.accepted_risk else "")
    )


def list_versions(
    ctx: typer.Context,
    kind: Annotated[Kind | None, typer.Option(help="model or dataset.")] = None,
    q: Annotated[str | None, typer.Option("--q", help="Text in name, description, tags.")] = None,
    sensitivity: Annotated[str | None, typer.Option(help="Sensitivity level.")] = None,
    status: Annotated[Status | None, typer.Option(help="Version status.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows.")] = 100,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """List versions in the catalog, by name then newest first."""
    st = state(ctx)
    rows = catalog(ctx).search(
        kind=kind, text=q, sensitivity=sensitivity, status=status, limit=limit
    )
    if fmt is Format.JSON:
        write_text(st, json.dumps([r.to_dict() for r in rows], indent=2), None)
        return
    st.out.print(_summary_table(rows))


def _summary_table(rows: Sequence[VersionSummary]) -> Table:
    table = Table(title=f"catalog ({len(rows)} versions)")
    for column in ("ref", "kind", "status", "sensitivity", "files", "size", "digest", "author"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r.ref,
            r.kind.value,
            r.status.value,
            r.sensitivity,
            str(r.files),
            _size(r.size),
            r.digest[:16] + "…",
            r.author,
        )
    return table


def show(ctx: typer.Context, ref: RefArgument, fmt: FormatOption = Format.TABLE) -> None:
    """Show one version: status, digest, card, lineage, findings, reviews, aliases."""
    st = state(ctx)
    info = catalog(ctx).show(ref)
    if fmt is Format.JSON:
        write_text(st, json.dumps(info.to_dict(), indent=2), None)
        return
    s = info.summary
    table = Table(title=s.ref, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field_name, value in (
        ("kind", s.kind.value),
        ("status", s.status.value),
        ("owner", info.owner),
        ("author", s.author),
        ("created", s.created_at),
        ("sensitivity", s.sensitivity),
        ("manifest sha256", s.digest),
        ("signing key", info.key_id),
        ("files", f"{s.files} ({_size(s.size)})"),
        ("aliases", ", ".join(info.aliases) or "-"),
        ("lineage", ", ".join(f"{rel} {ref}" for rel, ref in info.lineage) or "-"),
        ("findings", ", ".join(f"{f.severity.value} {f.rule}" for f in info.findings) or "-"),
        ("accepted risk", info.accepted_risk or "-"),
        ("reviews", "; ".join(f"{r['decision']} by {r['reviewer']}" for r in info.reviews) or "-"),
        ("assessments", "; ".join(
            f"#{a['id']} {'passed' if a['passed'] else 'failed'}"
            f"{' (stale: another policy or digest)' if a['stale'] else ''} {a['at']}"
            for a in info.assessments) or "-"),
        ("collaborators", ", ".join(f"{p} ({r})" for p, r in info.collaborators.items())),
        ("description", str(info.card.get("description", ""))),
    ):
        table.add_row(field_name, value)
    st.out.print(table)


def lineage(ctx: typer.Context, ref: RefArgument, fmt: FormatOption = Format.TABLE) -> None:
    """Show what a version came from and what was built on it, transitively.

    "Dataset X v3 turned out poisoned — which models were trained on it, directly or through
    parents?" is the downstream list of X@3.
    """
    st = state(ctx)
    report = catalog(ctx).lineage(ref)
    if fmt is Format.JSON:
        write_text(st, json.dumps(report.to_dict(), indent=2), None)
        return
    for title, nodes in (
        ("upstream (came from)", report.upstream),
        ("downstream (built on it)", report.downstream),
    ):
        st.out.print(_lineage_table(f"{report.ref} {title}", nodes))


def _lineage_table(title: str, nodes: Sequence[LineageNode]) -> Table:
    table = Table(title=title)
    for column in ("depth", "ref", "kind", "status", "relation", "via"):
        table.add_column(column)
    for n in nodes:
        table.add_row(str(n.depth), n.ref, n.kind.value, n.status.value, n.relation, n.via)
    return table


def get(
    ctx: typer.Context,
    ref: RefArgument,
    dest: Annotated[Path, typer.Argument(help="A new (or empty) directory to write into.")],
    signature: Annotated[
        Path | None,
        typer.Option(
            help="Also write the OpenSSF model-signing bundle here, for 'model_signing verify "
            "key DEST --signature FILE --public_key KEY.pem' (the key that signed it: see "
            "--public-key)."
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="Also write the public key that signed the version (the workspace's, or the "
            "user's given with --signing-key at add) here, as PEM.",
        ),
    ] = None,
) -> None:
    """Decrypt a version into DEST, verifying every chunk and digest; the read is audited.

    Refuses destroyed versions and versions with unaccepted findings at or above high.
    """
    st = state(ctx)
    with busy(st, f"decrypting and verifying {ref}…"):
        cat = catalog(ctx)
        info = cat.show(ref) if public_key is not None else None
        manifest = cat.get(info.summary.ref if info else ref, dest, signature=signature)
        if info is not None and public_key is not None:
            write_text(st, info.public_key, public_key)
    st.err.print(
        f"wrote {len(manifest.files)} file(s), {_size(manifest.total_size)} to {dest} "
        f"(manifest sha256 {manifest.digest[:16]}…)"
    )


def verify(
    ctx: typer.Context,
    ref: RefArgument,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also decrypt every chunk and re-hash the plaintext (needs the KEK; slower).",
        ),
    ] = False,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="table, json or sarif.")
    ] = OutputFormat.TABLE,
) -> None:
    """Re-hash every blob, check the signature and the version's audit entries.

    Exit 0 when everything matches; 1 naming each blob, row, card, signature or audit entry
    that does not.
    """
    st = state(ctx)
    with busy(st, f"verifying {ref}…"):
        result = catalog(ctx).verify(ref, deep=deep)
    if fmt is OutputFormat.TABLE and result.ok:
        st.out.print(
            f"[green]{result.ref} verified[/green]: {result.files} file(s), "
            f"{_size(result.bytes)} re-hashed{' and decrypted' if deep else ''}, "
            "signature and audit entries match"
        )
        raise typer.Exit(EXIT_CLEAN)
    raise typer.Exit(
        emit_findings(
            st,
            result.findings(),
            tool="verify",
            fmt=fmt,
            fail_on=Severity.HIGH,
            summary=result.to_dict(),
        )
    )


def fsck(
    ctx: typer.Context,
    clean: Annotated[
        bool, typer.Option("--clean", help="Remove orphans left by interrupted writes.")
    ] = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Cross-check database, blob store and audit chain; find (and clean) orphans.

    Exit 1 when something is damaged (missing blob, broken audit chain); orphans alone are not
    damage.
    """
    st = state(ctx)
    with busy(st, "checking database, blob store and audit chain…"):
        report = catalog(ctx).fsck(clean=clean)
    if fmt is Format.JSON:
        write_text(st, json.dumps(report.to_dict(), indent=2), None)
    else:
        for p in (*report.problems, *report.orphans):
            st.out.print(f"{p.kind:10} {p.subject}: {p.message}")
        st.err.print(
            f"fsck: {report.versions} version(s), {report.scopes} blob scope(s), "
            f"{len(report.problems)} problem(s), {len(report.orphans)} orphan(s)"
            + (f", {report.cleaned} removed" if clean else "")
        )
    raise typer.Exit(EXIT_CLEAN if report.ok else EXIT_FINDINGS)


def _size(n: int) -> str:
    value: float = n
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
