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
import hashlib
import importlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from bastion.catalog import schema as t
from bastion.catalog.audit import canonical_json
from bastion.catalog.blobs import (
    LocalBlobStore,
    StoredBlob,
    new_data_key,
    new_scope,
    unwrap_key,
    wrap_key,
)
from bastion.catalog.cards import AnyCard, CardKind, card_from_dict
from bastion.catalog.db import is_postgres
from bastion.catalog.keys import load_kek
from bastion.catalog.records import (
    AccessDeniedError,
    FsckReport,
    Kind,
    LineageNode,
    LineageReport,
    Problem,
    Ref,
    RegistrationRefusedError,
    Relation,
    Role,
    Status,
    Verification,
    VersionInfo,
    VersionSummary,
)
from bastion.catalog.signing import FileEntry, Manifest, sign_manifest, verify_bundle
from bastion.catalog.workspace import Workspace
from bastion.config import read_config
from bastion.errors import BastionError, IntegrityError, NotFoundError, StorageError, UsageError
from bastion.findings import Finding, Severity
from bastion.scan.interface import ScanReport

__all__ = ["Catalog", "Scanner"]

Scanner = Callable[[Path], ScanReport]
_CATALOG_LOCK: Final = 1651078517  # PostgreSQL advisory lock serialising catalog writes
_GATE: Final = Severity.HIGH
_NO_CARD: Final = "No card was supplied at registration."
_ALLOWED_STATUS: Final[dict[Status, frozenset[Status]]] = {
    Status.DRAFT: frozenset({Status.ARCHIVED}),
    Status.IN_REVIEW: frozenset({Status.ARCHIVED}),
    Status.APPROVED: frozenset({Status.DEPRECATED, Status.ARCHIVED}),
    Status.DEPRECATED: frozenset({Status.APPROVED, Status.ARCHIVED}),
    Status.ARCHIVED: frozenset(),
    Status.DESTROYED: frozenset(),
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _default_scanner(path: Path) -> ScanReport:
    try:
        scan: Scanner = importlib.import_module("bastion.scan").scan
    except (ImportError, AttributeError) as exc:
        raise StorageError(
            "the artifact scanner is not available, and nothing is registered unscanned",
            hint="reinstall Bastion; registration always scans first",
        ) from exc
    return scan(path)


@dataclass(frozen=True, slots=True)
class _Version:
    """A resolved version row with its asset."""

    id: int
    asset_id: int
    name: str
    kind: Kind
    number: int
    status: Status
    digest: str
    author: str
    scope: str
    wrapped_key: str | None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"


_VERSION_COLUMNS: Final = (
    t.versions.c.id,
    t.versions.c.asset_id,
    t.assets.c.name,
    t.assets.c.kind,
    t.versions.c.number,
    t.versions.c.status,
    t.versions.c.digest,
    t.versions.c.author,
    t.versions.c.blob_scope,
    t.versions.c.wrapped_key,
)


def _as_version(row: Any) -> _Version:
    return _Version(
        int(row.id), int(row.asset_id), row.name, Kind(row.kind), int(row.number),
        Status(row.status), row.digest, row.author, row.blob_scope, row.wrapped_key,
    )


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
    ) -> VersionInfo:
        """Register a model version: scan, hash, encrypt, store, sign, record, audit."""
        edges = {
            Relation.TRAINED_ON: list(trained_on),
            Relation.DERIVED_FROM: [derived_from] if derived_from else [],
            Relation.EVALUATED_ON: list(evaluated_on),
        }
        return self._add(Kind.MODEL, name, path, card, edges, accept_risk, sensitivity)

    def add_dataset(
        self,
        name: str,
        path: Path,
        *,
        card: AnyCard | Mapping[str, Any] | None = None,
        derived_from: str | None = None,
        accept_risk: str | None = None,
        sensitivity: str | None = None,
    ) -> VersionInfo:
        """Register a dataset version (``derived_from`` another dataset version, if any)."""
        edges = {Relation.DERIVED_FROM: [derived_from] if derived_from else []}
        return self._add(Kind.DATASET, name, path, card, edges, accept_risk, sensitivity)

    def _add(
        self,
        kind: Kind,
        name: str,
        path: Path,
        card: AnyCard | Mapping[str, Any] | None,
        edges: Mapping[Relation, Sequence[str]],
        accept_risk: str | None,
        sensitivity: str | None,
    ) -> VersionInfo:
        # 1. Check everything that can be checked before any byte is written.
        ref = Ref.parse(name)
        if ref.version is not None or ref.alias is not None:
            raise UsageError(f"give the asset name without @: {name!r}")
        if accept_risk is not None and not accept_risk.strip():
            raise UsageError(
                "--accept-risk needs a reason", hint='e.g. --accept-risk "CVE triaged"'
            )
        user_card = _user_card(card, kind)
        edges = _card_edges(kind, user_card, edges)
        sources = _walk(path)
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
                # 4. Sign the manifest (OpenSSF model-signing bundle, workspace P-256 key).
                bundle = sign_manifest(manifest, name, self._ws.settings.signing_key_file)
                return self._commit(
                    kind, name, user_card, manifest, stored, bundle, scope,
                    wrap_key(kek, data_key, scope), parents, report.findings, gating,
                    accept_risk, sensitivity,
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
        scope: str,
        wrapped: str,
        parents: Mapping[Relation, Sequence[_Version]],
        findings: Sequence[Finding],
        gating: Sequence[Finding],
        accept_risk: str | None,
        sensitivity: str | None,
    ) -> VersionInfo:
        now, actor = _now(), self.actor
        key_id = self._ws.signer.verifying_key.key_id
        with self._write() as conn:
            asset = conn.execute(select(t.assets).where(t.assets.c.name == name)).first()
            if asset is None:
                level = sensitivity or _card_sensitivity(user_card) or "internal"
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
            card = _complete_card(
                kind, name, level, user_card, manifest, key_id, now, parents,
                gating, accept_risk, actor,
            )
            card_text = canonical_json(card)
            version_id = conn.execute(
                insert(t.versions).values(
                    asset_id=asset_id, number=number, status=Status.DRAFT.value,
                    digest=manifest.digest, author=actor, created_at=now, card=card_text,
                    signature=bundle, key_id=key_id, blob_scope=scope, wrapped_key=wrapped,
                    file_count=len(manifest.files), total_size=manifest.total_size,
                    search_text=_search_text(name, kind, level, card),
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
                    "card_sha256": _sha(card_text),
                    "signature_sha256": _sha(bundle),
                    "blobs_sha256": _blobs_digest(stored),
                    "findings_sha256": _findings_digest(
                        [(text, accepted and f.severity >= _GATE)
                         for f, text in zip(findings, texts, strict=True)]
                    ),
                    "findings": len(findings),
                    "key_id": key_id,
                    "scope": scope,
                    "lineage": sorted(f"{e['relation']}:{p.ref}"
                                      for e, p in _edge_pairs(parents, edges)),
                    "accepted_risk": accept_risk,
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
        query = _summary_query()
        if kind is not None:
            query = query.where(t.assets.c.kind == kind.value)
        if sensitivity is not None:
            query = query.where(t.assets.c.sensitivity == sensitivity)
        if status is not None:
            query = query.where(t.versions.c.status == status.value)
        if text:
            pattern = "%" + _escape_like(text.strip().lower()) + "%"
            query = query.where(t.versions.c.search_text.like(pattern, escape="\\"))
        query = query.order_by(t.assets.c.name, t.versions.c.number.desc()).limit(limit)
        with self._read() as conn:
            return [_as_summary(row) for row in conn.execute(query)]

    def show(self, ref: str) -> VersionInfo:
        """Everything recorded about one version (``NAME``, ``NAME@N`` or ``NAME@ALIAS``)."""
        with self._read() as conn:
            v = self._resolve(conn, ref)
            row = conn.execute(
                _summary_query().add_columns(
                    t.assets.c.owner, t.versions.c.card, t.versions.c.key_id
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
            summary=_as_summary(row),
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
        )

    def lineage(self, ref: str) -> LineageReport:
        """Walk lineage both ways, transitively (a poisoned dataset → every model built on it)."""
        with self._read() as conn:
            v = self._resolve(conn, ref)
            up = self._walk_lineage(conn, v, upstream=True)
            down = self._walk_lineage(conn, v, upstream=False)
        return LineageReport(v.ref, up, down)

    def _walk_lineage(
        self, conn: Connection, start: _Version, *, upstream: bool
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

    def _get(self, v: _Version, dest: Path, signature: Path | None) -> Manifest:
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
            files = [_stored(r) for r in conn.execute(
                select(t.files).where(t.files.c.version_id == v.id).order_by(t.files.c.path)
            )]
            bundle = conn.execute(
                select(t.versions.c.signature).where(t.versions.c.id == v.id)
            ).scalar_one()
        # 2. The rows must be what was signed (a row rewritten to "../x" never gets written).
        try:
            manifest = Manifest.of(FileEntry(rel, b.size, b.sha256) for rel, b in files)
        except UsageError as exc:
            raise IntegrityError(
                f"{v.ref}: a files row is not a clean path: {exc.message}"
            ) from None
        if verify_bundle(bundle, self._ws.signer.verifying_key) != manifest.digests:
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
            for rel, blob in files:
                target = temp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("xb") as out:
                    for chunk in self.store.read(v.scope, blob, key):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
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
        """Re-hash every blob, check the signature and the version's audit entries.

        Checks: 1. the wrapped key unwraps; 2. every blob's stored bytes hash to the digest
        recorded when it was written (with ``deep``, also: every chunk decrypts and
        authenticates, and the plaintext hashes to its files row); 3. the signature verifies with
        the workspace key and signs exactly the files rows; 4. the files rows hash to the
        version's digest; 5. the add entry in the audit log records this digest, card,
        signature, findings and blob digests; 6. the status is the last one the audit log
        records; 7. the audit entries about this version are intact in the chain.
        """
        problems: list[Problem] = []
        with self._read() as conn:
            v = self._resolve(conn, ref)
            row = conn.execute(select(t.versions).where(t.versions.c.id == v.id)).one()
            files = [_stored(r) for r in conn.execute(
                select(t.files).where(t.files.c.version_id == v.id).order_by(t.files.c.path)
            )]
            finding_rows = conn.execute(
                select(t.findings.c.data, t.findings.c.accepted)
                .where(t.findings.c.version_id == v.id).order_by(t.findings.c.id)
            ).all()
        total = 0
        if v.status is not Status.DESTROYED:
            try:
                key = unwrap_key(  # 1.
                    load_kek(self._ws.settings.kek_file), row.wrapped_key or "", v.scope
                )
            except IntegrityError as exc:
                problems.append(Problem("key", v.ref, exc.message))
                key = None
            # 2. Files in parallel: hashlib releases the GIL while it hashes.
            with ThreadPoolExecutor() as pool:
                for rel, checked, error in pool.map(
                    lambda f: self._check_blob(v.scope, key if deep else None, *f), files
                ):
                    total += checked
                    if error is not None:
                        problems.append(Problem("blob", rel, error))
        manifest = Manifest.of(FileEntry(rel, b.size, b.sha256) for rel, b in files)
        try:  # 3.
            signed = verify_bundle(row.signature, self._ws.signer.verifying_key)
        except IntegrityError as exc:
            problems.append(Problem("signature", v.ref, exc.message))
        else:
            recorded = manifest.digests
            for path in sorted(set(signed) | set(recorded)):
                if signed.get(path) != recorded.get(path):
                    problems.append(Problem(
                        "files-row", path,
                        "the files row does not match what was signed "
                        f"(signed {signed.get(path, 'nothing')}, "
                        f"recorded {recorded.get(path, 'nothing')})",
                    ))
        if manifest.digest != row.digest:  # 4.
            problems.append(Problem(
                "version-row", v.ref,
                f"the files hash to manifest {manifest.digest[:16]}… but the version records "
                f"{row.digest[:16]}…",
            ))
        problems.extend(self._check_audit(v, row, files, finding_rows))  # 5.–7.
        return Verification(v.ref, row.digest, len(files), total, tuple(problems))

    def _check_blob(
        self, scope: str, key: bytes | None, rel: str, blob: StoredBlob
    ) -> tuple[str, int, str | None]:
        try:
            if key is not None:  # first, as it names the damaged chunk
                for _ in self.store.read(scope, blob, key):
                    pass
            self.store.check_sealed(scope, blob)
        except IntegrityError as exc:
            return rel, 0, exc.message
        return rel, blob.size, None

    def _check_audit(
        self, v: _Version, row: Any, files: Sequence[tuple[str, StoredBlob]],
        finding_rows: Sequence[Any],
    ) -> list[Problem]:
        problems: list[Problem] = []
        entries = self._ws.audit.entries(subject=v.ref)
        added = [e for e in entries if e.action == f"{v.kind.value}.add"]
        if not added:
            return [Problem("audit", v.ref, "the audit log has no entry registering this version")]
        details = added[0].details
        expected = {
            "digest": row.digest,
            "card_sha256": _sha(row.card),
            "signature_sha256": _sha(row.signature),
            "findings_sha256": _findings_digest([(r.data, bool(r.accepted)) for r in finding_rows]),
            "blobs_sha256": _blobs_digest(files),
        }
        names = {"digest": "version-row", "card_sha256": "card", "signature_sha256": "signature",
                 "findings_sha256": "findings", "blobs_sha256": "files-row"}
        for field_name, value in expected.items():  # 5.
            if details.get(field_name) != value:
                problems.append(Problem(
                    names[field_name], v.ref,
                    f"the stored {names[field_name]} differs from the one recorded in audit "
                    f"entry #{added[0].seq} at registration",
                ))
        status = Status.DRAFT.value  # 6.
        for e in entries:
            if e.action == "version.status":
                status = str(e.details.get("to"))
        if status != row.status:
            problems.append(Problem(
                "version-row", v.ref,
                f"status is {row.status!r} but the audit log last recorded {status!r}",
            ))
        seqs = {e.seq for e in entries}  # 7.
        for p in self._ws.audit.verify().problems:
            if p.seq in seqs or p.kind.value in ("deleted", "truncated"):
                problems.append(Problem("audit", f"audit#{p.seq}", p.message))
        return problems

    def fsck(self, *, clean: bool = False) -> FsckReport:
        """Cross-check database, blob store and audit chain; with ``clean``, remove orphans.

        Damage (a missing blob, a broken chain, a version without its audit entry) is reported
        and never "repaired"; orphans (scopes of interrupted adds, stray or half-written blobs,
        leftovers of destroyed versions) are harmless and removed with ``clean``.
        """
        problems: list[Problem] = []
        orphans: list[Problem] = []
        cleaned = 0
        with self._read() as conn:
            rows = [_as_version(r) for r in conn.execute(
                select(*_VERSION_COLUMNS).join(t.assets, t.assets.c.id == t.versions.c.asset_id)
            )]
            referenced: dict[int, set[str]] = {}
            for f in conn.execute(select(t.files.c.version_id, t.files.c.sha256)):
                referenced.setdefault(int(f.version_id), set()).add(f.sha256)
        added = {
            e.subject for k in Kind for e in self._ws.audit.entries(action=f"{k.value}.add")
        }
        present = set(self.store.scopes())
        by_scope = {v.scope: v for v in rows}
        for v in rows:
            if v.ref not in added:
                problems.append(Problem("audit", v.ref, "no audit entry records its registration"))
            if v.status is Status.DESTROYED:
                if v.scope in present:
                    orphans.append(Problem("orphan", v.scope, f"blobs of destroyed {v.ref}"))
                    if clean:
                        self.store.delete_scope(v.scope)
                        cleaned += 1
                continue
            wanted = referenced.get(v.id, set())
            if v.scope not in present:
                if wanted:
                    problems.append(Problem("blob", v.ref, "its blob scope is missing"))
                continue
            have = set(self.store.blobs(v.scope))
            for sha in sorted(wanted - have):
                problems.append(Problem("blob", v.ref, f"blob {sha[:16]}… is missing"))
            for sha in sorted(have - wanted):
                orphans.append(Problem("orphan", f"{v.scope}/{sha[:16]}…",
                                       f"blob in {v.ref}'s scope that no file names"))
                if clean:
                    self.store.delete_blob(v.scope, sha)
                    cleaned += 1
            if self.store.temporaries(v.scope) and self.store.is_abandoned(v.scope):
                orphans.append(Problem("orphan", v.scope, f"half-written blob in {v.ref}'s scope"))
                if clean:
                    self.store.delete_temporaries(v.scope)
                    cleaned += 1
        for scope in sorted(present - set(by_scope)):
            if not self.store.is_abandoned(scope):
                continue  # an add in progress holds it
            orphans.append(Problem("orphan", scope, "blob scope of an interrupted add"))
            if clean:
                self.store.delete_scope(scope)
                cleaned += 1
        for p in self._ws.audit.verify().problems:
            problems.append(Problem("audit", f"audit#{p.seq}", p.message))
        if clean and cleaned:
            self._ws.audit.append(
                actor=self.actor, action="catalog.fsck.clean", subject="catalog",
                details={"removed": cleaned},
            )
        return FsckReport(len(rows), len(present), tuple(problems), tuple(orphans), cleaned)

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

    def _resolve(self, conn: Connection, text: str) -> _Version:
        ref = Ref.parse(text)
        query = select(*_VERSION_COLUMNS).join(t.assets, t.assets.c.id == t.versions.c.asset_id)
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
        return _as_version(row)

    def _resolve_edges(
        self, conn: Connection, kind: Kind, edges: Mapping[Relation, Sequence[str]]
    ) -> dict[Relation, list[_Version]]:
        wanted = {
            Relation.TRAINED_ON: Kind.DATASET,
            Relation.EVALUATED_ON: Kind.DATASET,
            Relation.DERIVED_FROM: kind,
        }
        parents: dict[Relation, list[_Version]] = {}
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

    def _check_reviewer(self, conn: Connection, v: _Version, verb: str) -> None:
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

    def _round_start(self, conn: Connection, v: _Version) -> int:
        return int(conn.execute(
            select(func.coalesce(func.max(t.reviews.c.id), 0)).where(and_(
                t.reviews.c.version_id == v.id, t.reviews.c.decision == "requested",
            ))
        ).scalar_one())

    def _review_row(self, conn: Connection, v: _Version, decision: str, comment: str) -> None:
        conn.execute(insert(t.reviews).values(
            version_id=v.id, reviewer=self.actor, decision=decision, comment=comment, at=_now()
        ))
        self._audit(conn, f"version.review.{decision}", v.ref, comment=comment)

    def _set_status(self, conn: Connection, v: _Version, status: Status, reason: str) -> None:
        conn.execute(update(t.versions).where(t.versions.c.id == v.id).values(status=status.value))
        self._audit(conn, "version.status", v.ref, to=status.value, reason=reason,
                    **{"from": v.status.value})

    def _point(self, conn: Connection, v: _Version, alias: str, action: str) -> None:
        if v.status in (Status.DESTROYED, Status.ARCHIVED):
            raise UsageError(f"{v.ref} is {v.status.value}; an alias cannot point at it")
        if alias == "production" and v.status is not Status.APPROVED:
            raise AccessDeniedError(
                f"{v.ref} is {v.status.value}; production may only point at an approved version",
                hint=f"get it reviewed: bastion review request {v.ref}",
            )
        now = _now()
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


def _walk(path: Path) -> list[tuple[str, Path]]:
    """Files to register: a single file by its name, or every file under a directory.

    Symbolic links and special files are refused (fail closed): what is signed must be what is
    stored, and a link could point anywhere.
    """
    if path.is_symlink():
        raise UsageError(f"{path} is a symbolic link", hint="register the file it points at")
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise UsageError(f"{path} does not exist or is not a file or directory")
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for entry in (*dirs, *names):
            full = Path(root) / entry
            if full.is_symlink():
                raise UsageError(f"{full} is a symbolic link", hint="replace it with the file")
        for name in sorted(names):
            full = Path(root) / name
            if not full.is_file():
                raise UsageError(f"{full} is not a regular file")
            found.append((full.relative_to(path).as_posix(), full))
    if not found:
        raise UsageError(f"{path} holds no files", hint="register a file or a non-empty directory")
    return found


def _user_card(card: AnyCard | Mapping[str, Any] | None, kind: Kind) -> AnyCard | None:
    if card is None or not isinstance(card, Mapping):
        if card is not None and card.kind != kind.value:
            raise UsageError(f"a {card.kind} card cannot describe a {kind.value}")
        return card
    return card_from_dict(card, source="card", kind=CardKind(kind.value))


def _card_edges(
    kind: Kind, card: AnyCard | None, edges: Mapping[Relation, Sequence[str]]
) -> dict[Relation, list[str]]:
    """Lineage from flags plus what the card already names: both must resolve."""
    merged = {rel: list(refs) for rel, refs in edges.items()}
    if card is not None and kind is Kind.MODEL:
        data = card.model_dump(mode="json")
        merged.setdefault(Relation.TRAINED_ON, []).extend(data.get("training_datasets") or [])
        merged.setdefault(Relation.EVALUATED_ON, []).extend(data.get("evaluation_datasets") or [])
        if data.get("parent_model"):
            merged.setdefault(Relation.DERIVED_FROM, []).append(data["parent_model"])
    return merged


def _card_sensitivity(card: AnyCard | None) -> str | None:
    return card.sensitivity.value if card is not None and card.sensitivity else None


def _complete_card(
    kind: Kind,
    name: str,
    sensitivity: str,
    card: AnyCard | None,
    manifest: Manifest,
    key_id: str,
    now: str,
    parents: Mapping[Relation, Sequence[_Version]],
    gating: Sequence[Finding],
    accept_risk: str | None,
    actor: str,
) -> dict[str, Any]:
    """The stored card: what the author wrote plus what Bastion computed, validated again."""
    data: dict[str, Any] = card.model_dump(mode="json", exclude_none=True) if card else {
        "kind": kind.value, "description": _NO_CARD,
    }
    data.update(name=name, sensitivity=sensitivity)
    if kind is Kind.MODEL:
        refs = {rel: sorted(p.ref for p in ps) for rel, ps in parents.items()}
        data["training_datasets"] = refs.get(Relation.TRAINED_ON, [])
        data["evaluation_datasets"] = refs.get(Relation.EVALUATED_ON, [])
        if refs.get(Relation.DERIVED_FROM):
            data["parent_model"] = refs[Relation.DERIVED_FROM][0]
    data["integrity"] = {
        "manifest_sha256": manifest.digest,
        "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in manifest.files],
        "key_id": key_id,
        "signed_at": now,
    }
    if accept_risk is not None:
        data["accepted_risks"] = [{
            "reason": accept_risk, "by": actor, "at": now,
            "findings": sorted({f"{f.rule}: {f.title}"[:500] for f in gating}),
        }]
    validated = card_from_dict(data, source=f"card of {name}", trusted=True)
    return validated.model_dump(mode="json", exclude_none=True)


def _search_text(name: str, kind: Kind, sensitivity: str, card: Mapping[str, Any]) -> str:
    words = [name, kind.value, sensitivity, str(card.get("description", ""))]
    words.extend(str(tag) for tag in card.get("tags", ()))
    return " ".join(words).lower()[:4000]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _findings_digest(rows: Sequence[tuple[str, bool]]) -> str:
    return _sha(canonical_json([[text, accepted] for text, accepted in rows]))


def _edge_pairs(
    parents: Mapping[Relation, Sequence[_Version]], edges: Sequence[Mapping[str, Any]]
) -> Iterator[tuple[Mapping[str, Any], _Version]]:
    by_id = {p.id: p for ps in parents.values() for p in ps}
    for edge in edges:
        yield edge, by_id[edge["parent_id"]]


def _stored(row: Any) -> tuple[str, StoredBlob]:
    return row.path, StoredBlob(row.sha256, int(row.size), row.blob_id, row.blob_sha256)


def _blobs_digest(stored: Sequence[tuple[str, StoredBlob]]) -> str:
    """One digest over every file's stored-ciphertext digest, recorded in the audit entry."""
    return _sha(canonical_json(sorted([rel, b.sealed_sha256] for rel, b in stored)))


def _summary_query() -> Any:
    return select(
        t.assets.c.name, t.assets.c.kind, t.versions.c.number, t.versions.c.status,
        t.assets.c.sensitivity, t.versions.c.digest, t.versions.c.author,
        t.versions.c.created_at, t.versions.c.file_count, t.versions.c.total_size,
    ).join(t.assets, t.assets.c.id == t.versions.c.asset_id)


def _as_summary(row: Any) -> VersionSummary:
    return VersionSummary(
        name=row.name, kind=Kind(row.kind), version=int(row.number), status=Status(row.status),
        sensitivity=row.sensitivity, digest=row.digest, author=row.author,
        created_at=row.created_at, files=int(row.file_count), size=int(row.total_size),
    )
