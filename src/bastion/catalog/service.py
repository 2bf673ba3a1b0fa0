"""The asset catalog: register, read, verify, review and promote models and datasets.

NCSC 2.4 (assets protected at rest, every read logged), 2.5 (versions, cards, hashes, signatures,
lineage, rollback) and 2.1 (human review before production)::

    catalog = Catalog(workspace)
    data = catalog.add_dataset("digits-train", Path("data/"))
    model = catalog.add_model("digits", Path("model.joblib"), trained_on=[data.summary.ref])
    catalog.get("digits@1", Path("out/"))
    assert catalog.verify("digits@1").ok

Atomicity: blobs are written (and fsynced) first under a fresh scope whose lock the writer holds;
then one database transaction inserts the version, its files, lineage, findings and the audit
entry. A crash before the commit leaves an unlocked scope no row names, which ``fsck`` removes.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from bastion._time import utc_stamp
from bastion.catalog import _integrity
from bastion.catalog._register import (
    card_edges,
    card_sensitivity,
    complete_card,
    dataset_metrics,
    edge_pairs,
    search_text,
    validated_card,
    walk_files,
)
from bastion.catalog._rows import (
    VERSION_COLUMNS,
    VersionRow,
    as_summary,
    as_version,
    blobs_digest,
    escape_like,
    findings_digest,
    sha_text,
    signer_key,
    stored_blob,
    summary_query,
)
from bastion.catalog.cards import AnyCard
from bastion.catalog.records import (
    FsckReport,
    Kind,
    LineageNode,
    LineageReport,
    Ref,
    RegistrationRefusedError,
    Relation,
    Status,
    Verification,
    VersionInfo,
    VersionSummary,
)
from bastion.catalog.signing import FileEntry, Manifest, sign_manifest, verify_bundle
from bastion.config import read_config
from bastion.errors import (
    AccessDeniedError,
    BastionError,
    IntegrityError,
    NotFoundError,
    StorageError,
    UsageError,
)
from bastion.findings import Finding, Severity
from bastion.scan.interface import ScanReport
from bastion.store import schema as t
from bastion.store.audit import canonical_json
from bastion.store.blobs import (
    LocalBlobStore,
    StoredBlob,
    new_data_key,
    new_scope,
    unwrap_key,
    wrap_key,
)
from bastion.store.db import is_postgres
from bastion.store.keys import VerifyingKey, load_kek, load_user_key
from bastion.store.roles import Role
from bastion.store.workspace import Workspace

__all__ = ["Catalog", "Scanner"]

Scanner = Callable[[Path], ScanReport]
_CATALOG_LOCK: Final = 1651078517  # PostgreSQL advisory lock serialising catalog writes
_GATE: Final = Severity.HIGH
NO_CARD: Final = "No card was supplied at registration."
_ALLOWED_STATUS: Final[dict[Status, frozenset[Status]]] = {
    Status.DRAFT: frozenset({Status.ARCHIVED}),
    Status.IN_REVIEW: frozenset({Status.ARCHIVED}),
    Status.APPROVED: frozenset({Status.DEPRECATED, Status.ARCHIVED}),
    Status.DEPRECATED: frozenset({Status.APPROVED, Status.ARCHIVED}),
    Status.ARCHIVED: frozenset(),
    Status.DESTROYED: frozenset(),
}


def _default_scanner(path: Path) -> ScanReport:
    try:
        scan: Callable[..., ScanReport] = importlib.import_module("bastion.scan").scan
    except (ImportError, AttributeError) as exc:
        raise StorageError(
            "the artifact scanner is not available, and nothing is registered unscanned",
            hint="reinstall Bastion; registration always scans first",
        ) from exc
    return scan(path, digest=True)  # results are bound to the bytes stored (invariant 3)


def computed_card_fields(kind: Kind, path: Path) -> tuple[dict[str, Any], str]:
    """What Bastion records in a card from the content itself, and a note for the audit log:
    a model's software environment (for its BOM), a dataset's key metrics (NCSC 2.5)."""
    if kind is Kind.MODEL:
        from bastion.deps import current_environment

        pinned = sorted({(p.name, p.version) for p in current_environment() if p.version})
        environment = [{"name": n, "version": v} for n, v in pinned]
        return {"environment": environment}, f"environment: {len(environment)} distributions"
    metrics, note = dataset_metrics(path)
    return ({"metrics": metrics} if metrics is not None else {}), f"metrics {note}"


class Catalog:
    """The catalog of one workspace. Every method is one transaction and one audit entry."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        scanner: Scanner | None = None,
        store: LocalBlobStore | None = None,
        required_approvals: int | None = None,
    ) -> None:
        self._ws = workspace
        self._scanner = scanner or _default_scanner
        self.store = store or LocalBlobStore.from_url(workspace.settings.blob_url)
        self.required_approvals = required_approvals or _configured_approvals(workspace)

    @property
    def actor(self) -> str:
        """Who is acting (``BASTION_ACTOR`` or the OS user)."""
        return self._ws.settings.actor

    # -- registering -----------------------------------------------------------------------

    def add_model(
        self,
        name: str,
        path: Path,
        *,
        card: AnyCard | Mapping[str, Any] | None = None,
        trained_on: Iterable[str] = (),
        derived_from: str | None = None,
        evaluated_on: Iterable[str] = (),
        accept_risk: str | None = None,
        sensitivity: str | None = None,
        signing_key: Path | None = None,
    ) -> VersionInfo:
        """Register a model version: scan, hash, encrypt, store, sign, record, audit.

        ``signing_key`` signs with a user's own EC P-256 key (unencrypted PKCS#8 PEM, mode
        0600) instead of the workspace key; only its public half is recorded.
        """
        edges = {
            Relation.TRAINED_ON: list(trained_on),
            Relation.DERIVED_FROM: [derived_from] if derived_from else [],
            Relation.EVALUATED_ON: list(evaluated_on),
        }
        return self._add(
            Kind.MODEL, name, path, card, edges, accept_risk, sensitivity, signing_key
        )

    def add_dataset(
        self,
        name: str,
        path: Path,
        *,
        card: AnyCard | Mapping[str, Any] | None = None,
        derived_from: str | None = None,
        accept_risk: str | None = None,
        sensitivity: str | None = None,
        signing_key: Path | None = None,
    ) -> VersionInfo:
        """Register a dataset version (``derived_from`` another dataset version, if any);
        ``signing_key`` as for :meth:`add_model`."""
        edges = {Relation.DERIVED_FROM: [derived_from] if derived_from else []}
        return self._add(
            Kind.DATASET, name, path, card, edges, accept_risk, sensitivity, signing_key
        )

    def _add(
        self,
        kind: Kind,
        name: str,
        path: Path,
        card: AnyCard | Mapping[str, Any] | None,
        edges: Mapping[Relation, Sequence[str]],
        accept_risk: str | None,
        sensitivity: str | None,
        signing_key: Path | None,
    ) -> VersionInfo:
        # 1. Check everything that can be checked before any byte is written.
        ref = Ref.parse(name)
        if ref.version is not None or ref.alias is not None:
            raise UsageError(f"give the asset name without @: {name!r}")
        if accept_risk is not None and not accept_risk.strip():
            raise UsageError(
                "--accept-risk needs a reason", hint='e.g. --accept-risk "CVE triaged"'
            )
        key_file, signer = self._ws.settings.signing_key_file, self._ws.signer.verifying_key
        if signing_key is not None:  # a user's own key: read in place, never copied
            key_file, signer = signing_key, load_user_key(signing_key).verifying_key
        user_card = validated_card(card, kind)
        edges = card_edges(kind, user_card, edges)
        sources = walk_files(path)
        with self._ws.engine.connect() as conn:
            parents = self._resolve_edges(conn, kind, edges)
        # 2. Scan first; refuse findings at or above the gate unless a reason is given.
        report = self._scanner(path)
        gating = [f for f in report.findings if f.severity >= _GATE]
        if gating and accept_risk is None:
            raise RegistrationRefusedError(
                f"{path}: {len(gating)} finding(s) at or above {_GATE.value}; nothing was stored",
                report.findings,
                hint='fix the artifact, or record why the risk is acceptable: --accept-risk "…"',
            )
        computed = computed_card_fields(kind, path)
        scanned = {
            Path(f.location.path).resolve(): f.sha256
            for f in report.files
            if f.sha256 and not f.location.member
        }
        # 3. Encrypt and store under a fresh scope and data key, holding the scope's lock until
        #    the database commit so fsck never takes a live write for an orphan.
        scope, data_key = new_scope(), new_data_key()
        kek = load_kek(self._ws.settings.kek_file)
        with self.store.writer(scope) as writer:
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
                # 4. Sign the manifest (OpenSSF model-signing bundle, P-256 key).
                bundle = sign_manifest(manifest, name, key_file)
                return self._commit(
                    kind, name, user_card, manifest, stored, bundle, signer, scope,
                    wrap_key(kek, data_key, scope), parents, report.findings, gating,
                    accept_risk, sensitivity, computed,
                )
            except BaseException:
                self.store.delete_scope(scope)
                raise

    def _commit(
        self,
        kind: Kind,
        name: str,
        user_card: AnyCard | None,
        manifest: Manifest,
        stored: Sequence[tuple[str, StoredBlob]],
        bundle: str,
        signer: VerifyingKey,
        scope: str,
        wrapped: str,
        parents: Mapping[Relation, Sequence[VersionRow]],
        findings: Sequence[Finding],
        gating: Sequence[Finding],
        accept_risk: str | None,
        sensitivity: str | None,
        computed: tuple[Mapping[str, Any], str],
    ) -> VersionInfo:
        now, actor = utc_stamp(), self.actor
        key_id = signer.key_id
        with self._write() as conn:
            asset = conn.execute(select(t.assets).where(t.assets.c.name == name)).first()
            if asset is None:
                level = sensitivity or card_sensitivity(user_card) or "internal"
                asset_id = conn.execute(
                    insert(t.assets).values(
                        kind=kind.value, name=name, owner=actor, sensitivity=level, created_at=now
                    ).returning(t.assets.c.id)
                ).scalar_one()
                conn.execute(
                    insert(t.collaborators).values(
                        asset_id=asset_id, principal=actor, role=Role.ADMIN.value
                    )
                )
            else:
                asset_id, level = int(asset.id), str(asset.sensitivity)
                if asset.kind != kind.value:
                    raise UsageError(
                        f"{name} is a {asset.kind}, not a {kind.value}",
                        hint=f"use 'bastion {asset.kind} add', or another name",
                    )
                self._require(conn, asset_id, Role.CONTRIBUTOR, f"add a version of {name}")
            number = int(
                conn.execute(
                    select(func.coalesce(func.max(t.versions.c.number), 0)).where(
                        t.versions.c.asset_id == asset_id
                    )
                ).scalar_one()
            ) + 1
            card = complete_card(
                kind, name, level, user_card, manifest, key_id, now, parents,
                gating, accept_risk, actor, computed[0],
            )
            card_text = canonical_json(card)
            version_id = conn.execute(
                insert(t.versions).values(
                    asset_id=asset_id, number=number, status=Status.DRAFT.value,
                    digest=manifest.digest, author=actor, created_at=now, card=card_text,
                    signature=bundle, key_id=key_id, public_key=signer.pem().decode("ascii"),
                    blob_scope=scope, wrapped_key=wrapped,
                    file_count=len(manifest.files), total_size=manifest.total_size,
                    search_text=search_text(name, kind, level, card),
                ).returning(t.versions.c.id)
            ).scalar_one()
            if stored:
                conn.execute(
                    insert(t.files),
                    [
                        {"version_id": version_id, "path": rel, "size": b.size,
                         "sha256": b.sha256, "blob_id": b.blob_id,
                         "blob_sha256": b.sealed_sha256}
                        for rel, b in stored
                    ],
                )
            edges = [
                {"child_id": version_id, "relation": rel.value, "parent_id": p.id}
                for rel, ps in parents.items() for p in ps
            ]
            if edges:
                conn.execute(insert(t.lineage), edges)
            accepted = accept_risk is not None
            texts = [canonical_json(f.to_dict()) for f in findings]
            if findings:
                conn.execute(
                    insert(t.findings),
                    [
                        {"version_id": version_id, "digest": manifest.digest,
                         "severity": f.severity.value, "accepted": accepted and f.severity >= _GATE,
                         "data": text}
                        for f, text in zip(findings, texts, strict=True)
                    ],
                )
            if accept_risk is not None:
                conn.execute(
                    insert(t.accepted_risks).values(
                        version_id=version_id, reason=accept_risk, actor=actor, at=now,
                        rules=canonical_json(sorted({f.rule for f in gating})),
                    )
                )
            self._ws.audit.append(
                actor=actor,
                action=f"{kind.value}.add",
                subject=f"{name}@{number}",
                details={
                    "digest": manifest.digest,
                    "files": len(manifest.files),
                    "size": manifest.total_size,
                    "card_sha256": sha_text(card_text),
                    "signature_sha256": sha_text(bundle),
                    "blobs_sha256": blobs_digest(stored),
                    "findings_sha256": findings_digest(
                        [(text, accepted and f.severity >= _GATE)
                         for f, text in zip(findings, texts, strict=True)]
                    ),
                    "findings": len(findings),
                    "key_id": key_id,
                    "signer": "workspace" if key_id == self._ws.signer.verifying_key.key_id
                    else "user",
                    "scope": scope,
                    "lineage": sorted(f"{e['relation']}:{p.ref}"
                                      for e, p in edge_pairs(parents, edges)),
                    "accepted_risk": accept_risk,
                    "computed": computed[1],
                },
                connection=conn,
            )
        return self.show(f"{name}@{number}")

    # -- reading ---------------------------------------------------------------------------

    def search(
        self,
        *,
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
        with self._read() as conn:
            return [as_summary(row) for row in conn.execute(query)]

    def show(self, ref: str) -> VersionInfo:
        """Everything recorded about one version (``NAME``, ``NAME@N`` or ``NAME@ALIAS``)."""
        with self._read() as conn:
            v = self._resolve(conn, ref)
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
            public_key=row.public_key or self._ws.signer.verifying_key.pem().decode("ascii"),
        )

    def lineage(self, ref: str) -> LineageReport:
        """Walk lineage both ways, transitively (a poisoned dataset → every model built on it)."""
        with self._read() as conn:
            v = self._resolve(conn, ref)
            up = self._walk_lineage(conn, v, upstream=True)
            down = self._walk_lineage(conn, v, upstream=False)
        return LineageReport(v.ref, up, down)

    def _walk_lineage(
        self, conn: Connection, start: VersionRow, *, upstream: bool
    ) -> list[LineageNode]:
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

    def get(self, ref: str, dest: Path, *, signature: Path | None = None) -> Manifest:
        """Decrypt a version into the new directory ``dest``, verifying every digest as it writes.

        Refuses destroyed versions and versions with unaccepted findings at or above high. The
        directory appears whole or not at all (written beside it, then renamed). Every read,
        refused or not, is audited.
        """
        with self._read() as conn:
            v = self._resolve(conn, ref)
        try:
            manifest = self._get(v, dest, signature)
        except BastionError as exc:
            self._ws.audit.append(
                actor=self.actor, action=f"{v.kind.value}.read.refused", subject=v.ref,
                details={"reason": exc.message, "dest": str(dest)},
            )
            raise
        self._ws.audit.append(
            actor=self.actor, action=f"{v.kind.value}.read", subject=v.ref,
            details={"digest": v.digest, "dest": str(dest.resolve()), "files": len(manifest.files)},
        )
        return manifest

    def _get(self, v: VersionRow, dest: Path, signature: Path | None) -> Manifest:
        # 1. Who may read, and whether this version may be read at all.
        with self._read() as conn:
            self._require(conn, v.asset_id, Role.VIEWER, f"read {v.ref}")
            if v.status is Status.DESTROYED or v.wrapped_key is None:
                raise IntegrityError(
                    f"{v.ref} was destroyed; its content is unrecoverable",
                    hint="choose another version",
                )
            open_findings = conn.execute(
                select(func.count()).select_from(t.findings).where(
                    and_(t.findings.c.version_id == v.id,
                         t.findings.c.severity.in_(["high", "critical"]),
                         t.findings.c.accepted.is_(False))
                )
            ).scalar_one()
            if open_findings:
                raise RegistrationRefusedError(
                    f"{v.ref} has {open_findings} unaccepted finding(s) at or above high",
                    (), hint="review them with 'bastion show'; nothing was written",
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
            signed_by.public_key, signed_by.key_id, self._ws.signer.verifying_key
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
        key = unwrap_key(load_kek(self._ws.settings.kek_file), v.wrapped_key, v.scope)
        # 4. Decrypt beside the destination, verifying every chunk and digest, then rename.
        temp = dest.parent / f".{dest.name}.bastion-{secrets.token_hex(4)}"
        try:
            temp.mkdir(parents=True, mode=0o700)
            for rel, _ in files:
                (temp / rel).parent.mkdir(parents=True, exist_ok=True)

            def write(rel: str, blob: StoredBlob) -> None:
                with (temp / rel).open("xb") as out:
                    for chunk in self.store.read(v.scope, blob, key):
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

    # -- checking --------------------------------------------------------------------------

    def verify(self, ref: str, *, deep: bool = False) -> Verification:
        """Re-hash every blob, check the signature and the version's audit entries; see
        :func:`bastion.catalog._integrity.verify` for the checks."""
        return _integrity.verify(self, ref, deep=deep)

    def fsck(self, *, clean: bool = False) -> FsckReport:
        """Cross-check database, blob store and audit chain; with ``clean``, remove orphans."""
        return _integrity.fsck(self, clean=clean)

    # -- access, reviews, status, aliases --------------------------------------------------

    def grant(self, name: str, principal: str, role: Role) -> None:
        """Give ``principal`` a role on an asset (admin only)."""
        if not principal.strip():
            raise UsageError("the principal (user name) is empty")
        with self._write() as conn:
            asset_id = self._asset_id(conn, name)
            self._require(conn, asset_id, Role.ADMIN, f"grant roles on {name}")
            current = conn.execute(
                select(t.collaborators.c.role).where(and_(
                    t.collaborators.c.asset_id == asset_id,
                    t.collaborators.c.principal == principal,
                ))
            ).scalar()
            if current is None:
                conn.execute(insert(t.collaborators).values(
                    asset_id=asset_id, principal=principal, role=role.value
                ))
            else:
                conn.execute(update(t.collaborators).where(and_(
                    t.collaborators.c.asset_id == asset_id,
                    t.collaborators.c.principal == principal,
                )).values(role=role.value))
            self._audit(conn, "asset.grant", name, principal=principal, role=role.value,
                        previous=current)

    def request_review(self, ref: str, comment: str = "") -> Status:
        """Ask reviewers to look at a draft version (author or contributor)."""
        with self._write() as conn:
            v = self._resolve(conn, ref)
            if v.author != self.actor:
                self._require(conn, v.asset_id, Role.CONTRIBUTOR, f"request review of {v.ref}")
            if v.status is not Status.DRAFT:
                raise UsageError(f"{v.ref} is {v.status.value}; only a draft can go to review")
            self._review_row(conn, v, "requested", comment)
            self._set_status(conn, v, Status.IN_REVIEW, "review requested")
        return Status.IN_REVIEW

    def approve(self, ref: str, comment: str = "") -> Status:
        """Approve a version in review; it becomes approved at the required count.

        Rules: 1. the reviewer holds ``reviewer`` (or ``admin``) on the asset; 2. the author
        cannot approve their own version (NCSC 2.1: an independent review); 3. one approval per
        reviewer per review round.
        """
        with self._write() as conn:
            v = self._resolve(conn, ref)
            self._check_reviewer(conn, v, "approve")
            round_start = self._round_start(conn, v)
            already = conn.execute(
                select(func.count()).select_from(t.reviews).where(and_(
                    t.reviews.c.version_id == v.id, t.reviews.c.id > round_start,
                    t.reviews.c.reviewer == self.actor, t.reviews.c.decision == "approve",
                ))
            ).scalar_one()
            if already:  # 3.
                raise UsageError(f"{self.actor} has already approved {v.ref} in this review")
            self._review_row(conn, v, "approve", comment)
            approvals = int(conn.execute(
                select(func.count()).select_from(t.reviews).where(and_(
                    t.reviews.c.version_id == v.id, t.reviews.c.id > round_start,
                    t.reviews.c.decision == "approve",
                ))
            ).scalar_one())
            if approvals >= self.required_approvals:
                self._set_status(conn, v, Status.APPROVED,
                                 f"{approvals} of {self.required_approvals} approvals")
                return Status.APPROVED
        return Status.IN_REVIEW

    def reject(self, ref: str, comment: str = "") -> Status:
        """Request changes: the version goes back to draft (a reviewer, not the author)."""
        if not comment.strip():
            raise UsageError("say what must change", hint='add --comment "…"')
        with self._write() as conn:
            v = self._resolve(conn, ref)
            self._check_reviewer(conn, v, "reject")
            self._review_row(conn, v, "reject", comment)
            self._set_status(conn, v, Status.DRAFT, "changes requested")
        return Status.DRAFT

    def set_status(self, ref: str, status: Status, reason: str = "") -> None:
        """Deprecate, archive or reinstate a version (admin); see :meth:`destroy` to shred."""
        with self._write() as conn:
            v = self._resolve(conn, ref)
            self._require(conn, v.asset_id, Role.ADMIN, f"change the status of {v.ref}")
            if status not in _ALLOWED_STATUS[v.status]:
                raise UsageError(f"{v.ref} cannot go from {v.status.value} to {status.value}")
            self._set_status(conn, v, status, reason)

    def destroy(self, ref: str, reason: str) -> None:
        """Crypto-shred a version: erase its wrapped data key, then delete its blobs (admin).

        Without the data key the blobs are unreadable even from a backup or a disk image; other
        versions have their own keys and are untouched.
        """
        if not reason.strip():
            raise UsageError("say why the version is destroyed", hint='--reason "…"')
        with self._write() as conn:
            v = self._resolve(conn, ref)
            self._require(conn, v.asset_id, Role.ADMIN, f"destroy {v.ref}")
            if v.status is Status.DESTROYED:
                raise UsageError(f"{v.ref} is already destroyed")
            conn.execute(update(t.versions).where(t.versions.c.id == v.id).values(wrapped_key=None))
            conn.execute(t.aliases.delete().where(t.aliases.c.version_id == v.id))
            self._set_status(conn, v, Status.DESTROYED, reason)
            self._audit(conn, "version.destroy", v.ref, digest=v.digest, scope=v.scope,
                        reason=reason)
        self.store.delete_scope(v.scope)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` at a version; ``production`` only at an approved one (NCSC 2.1)."""
        alias = Ref.parse(f"{name}@{alias}").alias or ""
        if not alias:
            raise UsageError(f"{alias!r} is not an alias name", hint="letters first: production")
        with self._write() as conn:
            v = self._resolve(conn, f"{name}@{version}")
            self._require(conn, v.asset_id, Role.CONTRIBUTOR, f"move aliases of {name}")
            self._point(conn, v, alias, "set")

    def rollback(self, name: str, alias: str = "production") -> str:
        """Move ``alias`` back to the version it pointed at before; return that ``NAME@VER``."""
        with self._write() as conn:
            asset_id = self._asset_id(conn, name)
            self._require(conn, asset_id, Role.CONTRIBUTOR, f"move aliases of {name}")
            stack: list[int] = []
            for row in conn.execute(
                select(t.alias_history.c.action, t.alias_history.c.version_id)
                .where(and_(t.alias_history.c.asset_id == asset_id,
                            t.alias_history.c.alias == alias))
                .order_by(t.alias_history.c.id)
            ):
                if row.action == "rollback":
                    stack.pop()
                else:
                    stack.append(int(row.version_id))
            if len(stack) < 2:
                raise UsageError(
                    f"{name}@{alias} has no earlier version to roll back to",
                    hint=f"point it explicitly: bastion alias set {name} {alias} VERSION",
                )
            number = conn.execute(
                select(t.versions.c.number).where(t.versions.c.id == stack[-2])
            ).scalar_one()
            v = self._resolve(conn, f"{name}@{number}")
            self._point(conn, v, alias, "rollback")
        return v.ref

    # -- internals -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._ws.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot read the catalog: {exc.__class__.__name__}",
                hint="check that the database is reachable",
            ) from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._ws.engine.begin() as conn:
                if is_postgres(conn):  # SQLite already holds its write lock (BEGIN IMMEDIATE)
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CATALOG_LOCK})")
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot write the catalog: {exc.__class__.__name__}",
                hint="check that the database is reachable and writable",
            ) from exc

    def _audit(self, conn: Connection, action: str, subject: str, **details: Any) -> None:
        self._ws.audit.append(
            actor=self.actor, action=action, subject=subject, details=details, connection=conn
        )

    def _asset_id(self, conn: Connection, name: str) -> int:
        found = conn.execute(select(t.assets.c.id).where(t.assets.c.name == name)).scalar()
        if found is None:
            raise NotFoundError(f"no asset named {name!r}", hint="see 'bastion list'")
        return int(found)

    def _resolve(self, conn: Connection, text: str) -> VersionRow:
        ref = Ref.parse(text)
        query = select(*VERSION_COLUMNS).join(t.assets, t.assets.c.id == t.versions.c.asset_id)
        query = query.where(t.assets.c.name == ref.name)
        if ref.version is not None:
            query = query.where(t.versions.c.number == ref.version)
        elif ref.alias is not None:
            query = query.join(t.aliases, and_(
                t.aliases.c.version_id == t.versions.c.id, t.aliases.c.alias == ref.alias,
            ))
        row = conn.execute(query.order_by(t.versions.c.number.desc()).limit(1)).first()
        if row is None:
            what = "asset" if ref.version is None and ref.alias is None else "version"
            raise NotFoundError(f"no {what} {text!r} in the catalog", hint="see 'bastion list'")
        return as_version(row)

    def _resolve_edges(
        self, conn: Connection, kind: Kind, edges: Mapping[Relation, Sequence[str]]
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
                        f"--{relation.value.replace('_', '-')} {text!r} needs a version",
                        hint=f"write {text}@VERSION",
                    )
                parent = self._resolve(conn, text)
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

    def _role(self, conn: Connection, asset_id: int) -> Role | None:
        role = conn.execute(
            select(t.collaborators.c.role).where(and_(
                t.collaborators.c.asset_id == asset_id,
                t.collaborators.c.principal == self.actor,
            ))
        ).scalar()
        return Role(role) if role else None

    def _require(self, conn: Connection, asset_id: int, role: Role, action: str) -> None:
        held = self._role(conn, asset_id)
        if held is None or held.rank < role.rank:
            name = conn.execute(select(t.assets.c.name).where(t.assets.c.id == asset_id)).scalar()
            raise AccessDeniedError(
                f"{self.actor} may not {action}: needs the {role.value} role "
                f"(holds {held.value if held else 'none'})",
                hint=f"an admin of {name} can run 'bastion grant {name} {self.actor} {role.value}'",
            )

    def _check_reviewer(self, conn: Connection, v: VersionRow, verb: str) -> None:
        self._require(conn, v.asset_id, Role.REVIEWER, f"{verb} {v.ref}")  # 1.
        if v.author == self.actor:  # 2.
            raise AccessDeniedError(
                f"{self.actor} registered {v.ref} and cannot {verb} it",
                hint="another reviewer must review it (NCSC 2.1: independent review)",
            )
        if v.status is not Status.IN_REVIEW:
            raise UsageError(
                f"{v.ref} is {v.status.value}, not in review",
                hint=f"the author runs 'bastion review request {v.ref}' first",
            )

    def _round_start(self, conn: Connection, v: VersionRow) -> int:
        return int(conn.execute(
            select(func.coalesce(func.max(t.reviews.c.id), 0)).where(and_(
                t.reviews.c.version_id == v.id, t.reviews.c.decision == "requested",
            ))
        ).scalar_one())

    def _review_row(self, conn: Connection, v: VersionRow, decision: str, comment: str) -> None:
        conn.execute(insert(t.reviews).values(
            version_id=v.id, reviewer=self.actor, decision=decision, comment=comment, at=utc_stamp()
        ))
        self._audit(conn, f"version.review.{decision}", v.ref, comment=comment)

    def _set_status(self, conn: Connection, v: VersionRow, status: Status, reason: str) -> None:
        conn.execute(update(t.versions).where(t.versions.c.id == v.id).values(status=status.value))
        self._audit(conn, "version.status", v.ref, to=status.value, reason=reason,
                    **{"from": v.status.value})

    def _point(self, conn: Connection, v: VersionRow, alias: str, action: str) -> None:
        if v.status in (Status.DESTROYED, Status.ARCHIVED):
            raise UsageError(f"{v.ref} is {v.status.value}; an alias cannot point at it")
        if alias == "production" and v.status is not Status.APPROVED:
            raise AccessDeniedError(
                f"{v.ref} is {v.status.value}; production may only point at an approved version",
                hint=f"get it reviewed: bastion review request {v.ref}",
            )
        now = utc_stamp()
        previous = conn.execute(
            select(t.aliases.c.version_id).where(and_(
                t.aliases.c.asset_id == v.asset_id, t.aliases.c.alias == alias,
            ))
        ).scalar()
        if previous is None:
            conn.execute(insert(t.aliases).values(
                asset_id=v.asset_id, alias=alias, version_id=v.id, updated_at=now
            ))
        else:
            conn.execute(update(t.aliases).where(and_(
                t.aliases.c.asset_id == v.asset_id, t.aliases.c.alias == alias,
            )).values(version_id=v.id, updated_at=now))
        conn.execute(insert(t.alias_history).values(
            asset_id=v.asset_id, alias=alias, version_id=v.id, action=action, at=now,
            actor=self.actor,
        ))
        self._audit(conn, f"alias.{action}", f"{v.name}@{alias}", version=v.number,
                    digest=v.digest)

# -- helpers ---------------------------------------------------------------------------------


def _configured_approvals(workspace: Workspace) -> int:
    section = read_config(workspace.settings.home).get("catalog") or {}
    value = section.get("required_approvals", 1) if isinstance(section, dict) else 1
    if not isinstance(value, int) or value < 1:
        raise UsageError(
            f"catalog.required_approvals must be a positive integer, not {value!r}",
            hint=f"edit {workspace.settings.config_file}",
        )
    return value
