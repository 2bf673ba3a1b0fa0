"""Registering a version: check, scan, encrypt and store, sign, then commit in one transaction.

Atomicity: blobs are written (and fsynced) first under a fresh scope whose lock the writer holds;
then one database transaction inserts the version, its files, lineage, findings and the audit
entry. A crash before the commit leaves an unlocked scope no row names, which ``fsck`` removes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select

from bastion._time import utc_stamp
from bastion.catalog._context import GATE, CatalogContext
from bastion.catalog._prepare import (
    card_edges,
    card_sensitivity,
    complete_card,
    dataset_metrics,
    search_text,
    validated_card,
    walk_files,
)
from bastion.catalog._rows import VersionRow, blobs_digest, findings_digest, sha_text
from bastion.catalog.cards import AnyCard
from bastion.catalog.records import Kind, Ref, RegistrationRefusedError, Relation, Status
from bastion.catalog.signing import FileEntry, Manifest, sign_manifest
from bastion.errors import IntegrityError, UsageError
from bastion.findings import Finding
from bastion.store import schema as t
from bastion.store.audit import canonical_json
from bastion.store.blobs import StoredBlob, new_scope
from bastion.store.keys import VerifyingKey, load_kek, load_user_key, new_data_key, wrap_key
from bastion.store.roles import Role

if TYPE_CHECKING:
    from bastion.catalog.bom import Distribution
    from bastion.scan.interface import ScanReport

__all__ = ["EnvironmentProbe", "Registration", "Scanner", "register"]

Scanner = Callable[[Path], "ScanReport"]
"""Scans a file or directory and binds each top-level file's SHA-256 (``bastion.scan.scan``
with ``digest=True``)."""
EnvironmentProbe = Callable[[], "Sequence[Distribution]"]
"""The Python distributions installed here, recorded in a model's card (NCSC 2.3)."""


@dataclass(frozen=True, slots=True)
class Registration:
    """What a caller asks to register."""

    kind: Kind
    """Model or dataset."""
    name: str
    """The asset; a new version of it if it exists."""
    path: Path
    """A file, or a directory of files."""
    card: AnyCard | Mapping[str, Any] | None = None
    """What the author wrote about it."""
    edges: Mapping[Relation, Sequence[str]] | None = None
    """Lineage references by relation (``NAME@VERSION`` each)."""
    accept_risk: str | None = None
    """Why findings at or above the gate are acceptable, if they are."""
    sensitivity: str | None = None
    """The sensitivity of a new asset (default: the card's, else internal)."""
    signing_key: Path | None = None
    """A user's own P-256 key to sign with instead of the workspace's."""
    derivation: Mapping[str, Any] | None = None
    """How a dataset was derived from its ``derived_from`` parent (a cleaning's record),
    appended to the audit log as ``dataset.clean`` in the same transaction."""


@dataclass(frozen=True, slots=True)
class _Staged:
    """A registration checked, scanned, stored and signed: everything the commit writes."""

    request: Registration
    card: AnyCard | None
    parents: Mapping[Relation, Sequence[VersionRow]]
    findings: Sequence[Finding]
    gating: Sequence[Finding]
    computed: Mapping[str, Any]
    computed_note: str
    manifest: Manifest
    stored: Sequence[tuple[str, StoredBlob]]
    bundle: str
    signer: VerifyingKey
    scope: str
    wrapped_key: str


def register(
    ctx: CatalogContext, request: Registration, scanner: Scanner, environment: EnvironmentProbe
) -> str:
    """Register ``request``; return the new version's ``NAME@VERSION``.

    Steps: 1. check everything that can be checked before any byte is written; 2. scan, and
    refuse findings at or above the gate unless a reason is given; 3. encrypt and store under a
    fresh scope and data key, holding the scope's lock until the commit, so fsck never takes a
    live write for an orphan; 4. sign the manifest (OpenSSF model-signing bundle); 5. commit
    version, files, lineage, findings and the audit entry in one transaction.
    """
    ws = ctx.workspace
    name = Ref.parse(request.name)  # 1.
    if name.version is not None or name.alias is not None:
        raise UsageError(f"give the asset name without @: {request.name!r}")
    if request.accept_risk is not None and not request.accept_risk.strip():
        raise UsageError(
            "the reason for accepting the risk is empty",
            hint="say why the findings are acceptable", param="accept_risk",
        )
    key_file, signer = ws.settings.signing_key_file, ws.signer.verifying_key
    if request.signing_key is not None:  # a user's own key: read in place, never copied
        key_file, signer = request.signing_key, load_user_key(request.signing_key).verifying_key
    card = validated_card(request.card, request.kind)
    edges = card_edges(request.kind, card, request.edges or {})
    sources = walk_files(request.path)
    with ctx.read() as conn:
        parents = _resolve_edges(ctx, conn, request.kind, edges)
    report = scanner(request.path)  # 2.
    gating = [f for f in report.findings if f.severity >= GATE]
    if gating and request.accept_risk is None:
        raise RegistrationRefusedError(
            f"{request.path}: {len(gating)} finding(s) at or above {GATE.value}; nothing was "
            "stored",
            report.findings,
            hint="fix the artifact, or record why the risk is acceptable",
            param="accept_risk",
        )
    computed, note = _computed_fields(request.kind, request.path, environment)
    scanned = {
        Path(f.location.path).resolve(): f.sha256
        for f in report.files
        if f.sha256 and not f.location.member
    }
    scope, data_key = new_scope(), new_data_key()  # 3.
    kek = load_kek(ws.settings.kek_file)
    with ctx.store.writer(scope) as writer:
        try:
            stored: list[tuple[str, StoredBlob]] = []
            for rel, source in sources:
                blob = writer.put_file(source, data_key)
                expected = scanned.get(source.resolve())
                if expected is not None and expected != blob.sha256:
                    raise IntegrityError(
                        f"{source} changed while it was being registered",
                        hint="register it again once nothing is writing to it",
                    )
                stored.append((rel, blob))
            manifest = Manifest.of(FileEntry(rel, b.size, b.sha256) for rel, b in stored)
            staged = _Staged(
                request, card, parents, tuple(report.findings), tuple(gating), computed, note,
                manifest, tuple(stored), sign_manifest(manifest, request.name, key_file),  # 4.
                signer, scope, wrap_key(kek, data_key, scope),
            )
            return _commit(ctx, staged)  # 5.
        except BaseException:
            ctx.store.delete_scope(scope)
            raise


def _computed_fields(
    kind: Kind, path: Path, environment: EnvironmentProbe
) -> tuple[dict[str, Any], str]:
    """What Bastion records in a card from the content itself, and a note for the audit log:
    a model's software environment (for its BOM), a dataset's key metrics (NCSC 2.5)."""
    if kind is Kind.MODEL:
        pinned = sorted({(p.name, p.version) for p in environment() if p.version})
        libraries = [{"name": n, "version": v} for n, v in pinned]
        return {"environment": libraries}, f"environment: {len(libraries)} distributions"
    metrics, note = dataset_metrics(path)
    return ({"metrics": metrics} if metrics is not None else {}), f"metrics {note}"


def _resolve_edges(
    ctx: CatalogContext, conn: Connection, kind: Kind, edges: Mapping[Relation, Sequence[str]]
) -> dict[Relation, list[VersionRow]]:
    wanted = {
        Relation.TRAINED_ON: Kind.DATASET,
        Relation.EVALUATED_ON: Kind.DATASET,
        Relation.DERIVED_FROM: kind,
    }
    parents: dict[Relation, list[VersionRow]] = {}
    for relation, refs in edges.items():
        for text in refs:
            ref = Ref.parse(text)
            if ref.version is None and ref.alias is None:
                raise UsageError(
                    f"the {relation.value} reference {text!r} needs a version",
                    hint=f"write {text}@VERSION", param=relation.value,
                )
            parent = ctx.resolve(conn, text)
            if parent.kind is not wanted[relation]:
                raise UsageError(
                    f"{parent.ref} is a {parent.kind.value}; {relation.value} needs a "
                    f"{wanted[relation].value}"
                )
            if parent.status is Status.DESTROYED:
                raise UsageError(f"{parent.ref} was destroyed and cannot be a parent")
            if parent.id not in {p.id for p in parents.get(relation, [])}:
                parents.setdefault(relation, []).append(parent)
    return parents


def _commit(ctx: CatalogContext, s: _Staged) -> str:
    request, manifest, ws = s.request, s.manifest, ctx.workspace
    kind, name = request.kind, request.name
    now, actor, key_id = utc_stamp(), ctx.actor, s.signer.key_id
    with ctx.write() as conn:
        asset_id, level = _asset(ctx, conn, kind, name, request.sensitivity or card_sensitivity(
            s.card), now)
        number = int(conn.execute(
            select(func.coalesce(func.max(t.versions.c.number), 0))
            .where(t.versions.c.asset_id == asset_id)
        ).scalar_one()) + 1
        card = complete_card(
            kind, name, s.card, sensitivity=level, manifest=manifest, key_id=key_id, now=now,
            parents=s.parents, gating=s.gating, accept_risk=request.accept_risk, actor=actor,
            computed=s.computed,
        )
        card_text = canonical_json(card)
        version_id = conn.execute(
            insert(t.versions).values(
                asset_id=asset_id, number=number, status=Status.DRAFT.value,
                digest=manifest.digest, author=actor, created_at=now, card=card_text,
                signature=s.bundle, key_id=key_id, public_key=s.signer.pem().decode("ascii"),
                blob_scope=s.scope, wrapped_key=s.wrapped_key,
                file_count=len(manifest.files), total_size=manifest.total_size,
                search_text=search_text(name, kind, level, card),
            ).returning(t.versions.c.id)
        ).scalar_one()
        if s.stored:
            conn.execute(insert(t.files), [
                {"version_id": version_id, "path": rel, "size": b.size, "sha256": b.sha256,
                 "blob_id": b.blob_id, "blob_sha256": b.sealed_sha256}
                for rel, b in s.stored
            ])
        edges = sorted(
            (rel.value, p.id, p.ref) for rel, ps in s.parents.items() for p in ps
        )
        if edges:
            conn.execute(insert(t.lineage), [
                {"child_id": version_id, "relation": rel, "parent_id": pid}
                for rel, pid, _ in edges
            ])
        accepted = request.accept_risk is not None
        rows = [(canonical_json(f.to_dict()), accepted and f.severity >= GATE) for f in s.findings]
        if rows:
            conn.execute(insert(t.findings), [
                {"version_id": version_id, "digest": manifest.digest,
                 "severity": f.severity.value, "accepted": accepted_row, "data": text}
                for f, (text, accepted_row) in zip(s.findings, rows, strict=True)
            ])
        if request.accept_risk is not None:
            conn.execute(insert(t.accepted_risks).values(
                version_id=version_id, reason=request.accept_risk, actor=actor, at=now,
                rules=canonical_json(sorted({f.rule for f in s.gating})),
            ))
        ref = f"{name}@{number}"
        ctx.audit(
            f"{kind.value}.add", ref, connection=conn,
            digest=manifest.digest, files=len(manifest.files), size=manifest.total_size,
            card_sha256=sha_text(card_text), signature_sha256=sha_text(s.bundle),
            blobs_sha256=blobs_digest(s.stored), findings_sha256=findings_digest(rows),
            findings=len(s.findings), key_id=key_id,
            signer="workspace" if key_id == ctx.workspace.signer.verifying_key.key_id
            else "user",
            scope=s.scope, lineage=sorted(f"{rel}:{pref}" for rel, _, pref in edges),
            accepted_risk=request.accept_risk, computed=s.computed_note,
        )
        if request.derivation is not None:  # the caller's record, with the digest it produced
            ws.audit.append(actor=actor, action=f"{kind.value}.clean", subject=ref,
                            details={**request.derivation, "digest": manifest.digest},
                            connection=conn)
    return ref


def _asset(
    ctx: CatalogContext, conn: Connection, kind: Kind, name: str, sensitivity: str | None,
    now: str,
) -> tuple[int, str]:
    """The asset's id and sensitivity: a new asset is owned (admin) by the actor; adding to an
    existing one needs the contributor role."""
    asset = conn.execute(select(t.assets).where(t.assets.c.name == name)).first()
    if asset is None:
        level = sensitivity or "internal"
        asset_id = conn.execute(
            insert(t.assets).values(
                kind=kind.value, name=name, owner=ctx.actor, sensitivity=level, created_at=now
            ).returning(t.assets.c.id)
        ).scalar_one()
        conn.execute(insert(t.collaborators).values(
            asset_id=asset_id, principal=ctx.actor, role=Role.ADMIN.value
        ))
        return int(asset_id), level
    if asset.kind != kind.value:
        raise UsageError(
            f"{name} is a {asset.kind}, not a {kind.value}",
            hint=f"register it as a {asset.kind}, or choose another name",
        )
    ctx.require(conn, int(asset.id), Role.CONTRIBUTOR, f"add a version of {name}")
    return int(asset.id), str(asset.sensitivity)

