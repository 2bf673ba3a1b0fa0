"""Reading the catalog: search, show, lineage, card export, and ``get`` (decrypt and verify).

NCSC 2.4: every read of content, refused or not, is audited; NCSC 1.3: every card export too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Connection, and_, select

from bastion.catalog import _assessments
from bastion.catalog._context import GATE, CatalogContext
from bastion.catalog._rows import (
    VersionRow,
    as_summary,
    escape_like,
    signer_key,
    stored_blob,
    summary_query,
)
from bastion.catalog.cards import CardFormat, DisclosureLevel, card_from_dict
from bastion.catalog.cards import export_card as render_card
from bastion.catalog.records import (
    Kind,
    LineageNode,
    LineageReport,
    ReadRefusedError,
    Status,
    VersionInfo,
    VersionSummary,
)
from bastion.catalog.signing import FileEntry, Manifest, verify_bundle
from bastion.errors import BastionError, IntegrityError, StorageError, UsageError
from bastion.findings import Finding, Severity
from bastion.store import schema as t
from bastion.store.blobs import StoredBlob
from bastion.store.keys import load_kek, unwrap_key
from bastion.store.roles import Role

__all__ = ["export_card", "get", "lineage", "search", "show"]

_GATING: tuple[str, ...] = tuple(s.value for s in Severity if s >= GATE)


def search(ctx: CatalogContext, *,
    kind: Kind | None = None,
    text: str | None = None,
    sensitivity: str | None = None,
    status: Status | None = None,
    limit: int = 100,
) -> list[VersionSummary]:
    """Versions matching every filter given, by name then newest first."""
    query = summary_query()
    if kind is not None:
        query = query.where(t.assets.c.kind == kind.value)
    if sensitivity is not None:
        query = query.where(t.assets.c.sensitivity == sensitivity)
    if status is not None:
        query = query.where(t.versions.c.status == status.value)
    if text:
        pattern = "%" + escape_like(text.strip().lower()) + "%"
        query = query.where(t.versions.c.search_text.like(pattern, escape="\\"))
    query = query.order_by(t.assets.c.name, t.versions.c.number.desc()).limit(limit)
    with ctx.read() as conn:
        return [as_summary(row) for row in conn.execute(query)]


def show(ctx: CatalogContext, ref: str) -> VersionInfo:
    """Everything recorded about one version (``NAME``, ``NAME@N`` or ``NAME@ALIAS``)."""
    with ctx.read() as conn:
        v = ctx.resolve(conn, ref)
        row = conn.execute(
            summary_query().add_columns(
                t.assets.c.owner, t.versions.c.card, t.versions.c.key_id,
                t.versions.c.public_key,
            ).where(t.versions.c.id == v.id)
        ).one()
        files = conn.execute(
            select(t.files.c.path, t.files.c.size, t.files.c.sha256)
            .where(t.files.c.version_id == v.id)
            .order_by(t.files.c.path)
        ).all()
        findings = [
            Finding.from_dict(json.loads(r.data))
            for r in conn.execute(
                select(t.findings.c.data)
                .where(t.findings.c.version_id == v.id)
                .order_by(t.findings.c.id)
            )
        ]
        risk = conn.execute(
            select(t.accepted_risks.c.reason).where(t.accepted_risks.c.version_id == v.id)
        ).scalar()
        parents = conn.execute(
            select(t.lineage.c.relation, t.assets.c.name, t.versions.c.number)
            .join(t.versions, t.versions.c.id == t.lineage.c.parent_id)
            .join(t.assets, t.assets.c.id == t.versions.c.asset_id)
            .where(t.lineage.c.child_id == v.id)
            .order_by(t.lineage.c.relation, t.assets.c.name)
        ).all()
        aliases = conn.execute(
            select(t.aliases.c.alias).where(t.aliases.c.version_id == v.id)
            .order_by(t.aliases.c.alias)
        ).scalars().all()
        reviews = conn.execute(
            select(t.reviews.c.reviewer, t.reviews.c.decision, t.reviews.c.comment,
                   t.reviews.c.at)
            .where(t.reviews.c.version_id == v.id).order_by(t.reviews.c.id)
        ).mappings().all()
        people = conn.execute(
            select(t.collaborators.c.principal, t.collaborators.c.role)
            .where(t.collaborators.c.asset_id == v.asset_id)
        ).all()
        assessed = _assessments.listing(ctx, conn, v)
    return VersionInfo(
        summary=as_summary(row),
        owner=row.owner,
        card=json.loads(row.card),
        manifest=[{"path": f.path, "size": int(f.size), "sha256": f.sha256} for f in files],
        findings=findings,
        accepted_risk=risk,
        lineage=[(p.relation, f"{p.name}@{p.number}") for p in parents],
        aliases=list(aliases),
        reviews=[dict(r) for r in reviews],
        key_id=row.key_id,
        collaborators={p.principal: p.role for p in people},
        public_key=row.public_key or ctx.workspace.signer.verifying_key.pem().decode("ascii"),
        assessments=assessed,
    )


def lineage(ctx: CatalogContext, ref: str) -> LineageReport:
    """Walk lineage both ways, transitively (a poisoned dataset → every model built on it)."""
    with ctx.read() as conn:
        v = ctx.resolve(conn, ref)
        up = _walk_lineage(conn, v, upstream=True)
        down = _walk_lineage(conn, v, upstream=False)
    return LineageReport(v.ref, up, down)


def _walk_lineage(conn: Connection, start: VersionRow, *, upstream: bool) -> list[LineageNode]:
    near, far = (
        (t.lineage.c.child_id, t.lineage.c.parent_id) if upstream
        else (t.lineage.c.parent_id, t.lineage.c.child_id)
    )
    nodes: list[LineageNode] = []
    seen = {start.id}
    frontier = {start.id: start.ref}
    depth = 0
    while frontier:
        depth += 1
        rows = conn.execute(
            select(near.label("near"), t.lineage.c.relation, far.label("far"),
                   t.assets.c.name, t.assets.c.kind, t.versions.c.number, t.versions.c.status)
            .join(t.versions, t.versions.c.id == far)
            .join(t.assets, t.assets.c.id == t.versions.c.asset_id)
            .where(near.in_(list(frontier)))
            .order_by(t.assets.c.name, t.versions.c.number)
        ).all()
        following: dict[int, str] = {}
        for row in rows:
            if row.far in seen:
                continue
            seen.add(row.far)
            node_ref = f"{row.name}@{row.number}"
            following[row.far] = node_ref
            nodes.append(LineageNode(
                node_ref, Kind(row.kind), Status(row.status), row.relation,
                frontier[row.near], depth,
            ))
        frontier = following
    return nodes


def get(
    ctx: CatalogContext, ref: str, dest: Path, *, signature: Path | None = None
) -> Manifest:
    """Decrypt a version into the new directory ``dest``, verifying every digest as it writes.

    Refuses destroyed versions and versions with unaccepted findings at or above high. The
    directory appears whole or not at all (written beside it, then renamed). Every read,
    refused or not, is audited.
    """
    with ctx.read() as conn:
        v = ctx.resolve(conn, ref)
    try:
        manifest = _get(ctx, v, dest, signature)
    except BastionError as exc:
        ctx.workspace.audit.append(
            actor=ctx.actor, action=f"{v.kind.value}.read.refused", subject=v.ref,
            details={"reason": exc.message, "dest": str(dest)},
        )
        raise
    ctx.workspace.audit.append(
        actor=ctx.actor, action=f"{v.kind.value}.read", subject=v.ref,
        details={"digest": v.digest, "dest": str(dest.resolve()), "files": len(manifest.files)},
    )
    return manifest


def _get(ctx: CatalogContext, v: VersionRow, dest: Path, signature: Path | None) -> Manifest:
    # 1. Who may read, and whether this version may be read at all.
    with ctx.read() as conn:
        ctx.require(conn, v.asset_id, Role.VIEWER, f"read {v.ref}")
        if v.status is Status.DESTROYED or v.wrapped_key is None:
            raise IntegrityError(
                f"{v.ref} was destroyed; its content is unrecoverable",
                hint="choose another version",
            )
        open_findings = [
            Finding.from_dict(json.loads(text)) for text in conn.execute(
                select(t.findings.c.data).where(and_(
                    t.findings.c.version_id == v.id,
                    t.findings.c.severity.in_(_GATING),
                    t.findings.c.accepted.is_(False),
                )).order_by(t.findings.c.id)
            ).scalars()
        ]
        if open_findings:
            raise ReadRefusedError(
                f"{v.ref} has {len(open_findings)} unaccepted finding(s) at or above "
                f"{GATE.value}",
                open_findings, hint="review them with 'bastion show'; nothing was written",
            )
        files = [stored_blob(r) for r in conn.execute(
            select(t.files).where(t.files.c.version_id == v.id).order_by(t.files.c.path)
        )]
        signed_by = conn.execute(
            select(t.versions.c.signature, t.versions.c.key_id, t.versions.c.public_key)
            .where(t.versions.c.id == v.id)
        ).one()
        bundle = signed_by.signature
    # 2. The rows must be what was signed (a row rewritten to "../x" never gets written).
    try:
        manifest = Manifest.of(FileEntry(rel, b.size, b.sha256) for rel, b in files)
    except UsageError as exc:
        raise IntegrityError(
            f"{v.ref}: a files row is not a clean path: {exc.message}"
        ) from None
    signer = signer_key(
        signed_by.public_key, signed_by.key_id, ctx.workspace.signer.verifying_key
    )
    if verify_bundle(bundle, signer) != manifest.digests:
        raise IntegrityError(
            f"{v.ref}: the files rows differ from the signed manifest",
            hint=f"run 'bastion verify {v.ref}' for the details",
        )
    # 3. The destination must be new: nothing is ever overwritten.
    dest = dest.absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists", hint="choose a new or empty directory")
    key = unwrap_key(load_kek(ctx.workspace.settings.kek_file), v.wrapped_key, v.scope)
    # 4. Decrypt beside the destination, verifying every chunk and digest, then rename.
    temp = dest.parent / f".{dest.name}.bastion-{secrets.token_hex(4)}"
    try:
        temp.mkdir(parents=True, mode=0o700)
        for rel, _ in files:
            (temp / rel).parent.mkdir(parents=True, exist_ok=True)

        def write(rel: str, blob: StoredBlob) -> None:
            with (temp / rel).open("xb") as out:
                for chunk in ctx.store.read(v.scope, blob, key):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())

        with ThreadPoolExecutor(max(1, min(len(files), os.cpu_count() or 1))) as pool:
            for _ in pool.map(lambda f: write(*f), files):  # re-raises the first failure
                pass
        if dest.exists():
            dest.rmdir()
        os.replace(temp, dest)
    except OSError as exc:
        raise StorageError(
            f"cannot write {dest}: {exc.strerror or exc}", hint="check space and permissions"
        ) from exc
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    if signature is not None:
        signature.write_text(bundle, encoding="utf-8")
    return manifest


def export_card(ctx: CatalogContext, ref: str, fmt: CardFormat, level: DisclosureLevel) -> str:
    """The stored card of a version rendered for ``level`` in ``fmt``; the disclosure is
    audited as ``card.export`` (NCSC 1.3)."""
    info = show(ctx, ref)
    card = card_from_dict(dict(info.card), source=f"card of {info.summary.ref}", trusted=True)
    text = render_card(card, fmt, level, ref=info.summary.ref)
    ctx.audit("card.export", info.summary.ref, format=fmt.value, level=level.value,
              digest=info.summary.digest)
    return text
