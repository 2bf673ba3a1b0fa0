"""Integrity checks: ``verify`` one version, ``fsck`` the whole catalog (NCSC 2.4, 2.5).

Both name every mismatch (:class:`~bastion.catalog.records.Problem`) instead of stopping at the
first; neither repairs damage. ``fsck --clean`` only removes orphans of interrupted writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select

from bastion.catalog._context import CatalogContext
from bastion.catalog._rows import (
    VERSION_COLUMNS,
    VersionRow,
    as_version,
    blobs_digest,
    findings_digest,
    sha_text,
    signer_key,
    stored_blob,
)
from bastion.catalog.records import FsckReport, Kind, Problem, Status, Verification
from bastion.catalog.signing import FileEntry, Manifest, verify_bundle
from bastion.errors import ConfigError, IntegrityError
from bastion.store import schema as t
from bastion.store.blobs import StoredBlob
from bastion.store.keys import load_kek, unwrap_key

__all__ = ["fsck", "verify"]


def verify(ctx: CatalogContext, ref: str, *, deep: bool = False) -> Verification:
    """Re-hash every blob, check the signature and the version's audit entries.

    Checks: 1. the wrapped key unwraps; 2. every blob's stored bytes hash to the digest
    recorded when it was written (with ``deep``, also: every chunk decrypts and
    authenticates, and the plaintext hashes to its files row); 3. the signature verifies with
    the recorded signer's key (the workspace key or a user's) and signs exactly the files
    rows; 4. the files rows hash to the version's digest; 5. the add entry in the audit log
    records this digest, card, signature, signing key id, findings and blob digests; 6. the
    status is the last one the audit log records; 7. the audit entries about this version
    are intact in the chain.
    """
    problems: list[Problem] = []
    with ctx.read() as conn:
        v = ctx.resolve(conn, ref)
        row = conn.execute(select(t.versions).where(t.versions.c.id == v.id)).one()
        files = [stored_blob(r) for r in conn.execute(
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
                load_kek(ctx.workspace.settings.kek_file), row.wrapped_key or "", v.scope
            )
        except (IntegrityError, ConfigError) as exc:  # damaged row, or no KEK here
            problems.append(Problem("key", v.ref, exc.message))
            key = None
        # 2. Files in parallel: hashlib releases the GIL while it hashes.
        with ThreadPoolExecutor() as pool:
            for rel, checked, error in pool.map(
                lambda f: _check_blob(ctx, v.scope, key if deep else None, *f), files
            ):
                total += checked
                if error is not None:
                    problems.append(Problem("blob", rel, error))
    manifest = Manifest.of(FileEntry(rel, b.size, b.sha256) for rel, b in files)
    try:  # 3.
        signer = signer_key(row.public_key, row.key_id, ctx.workspace.signer.verifying_key)
        signed = verify_bundle(row.signature, signer)
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
    problems.extend(_check_audit(ctx, v, row, files, finding_rows))  # 5.–7.
    return Verification(v.ref, row.digest, len(files), total, tuple(problems))

def _check_blob(
    ctx: CatalogContext, scope: str, key: bytes | None, rel: str, blob: StoredBlob
) -> tuple[str, int, str | None]:
    try:
        if key is not None:  # first, as it names the damaged chunk
            for _ in ctx.store.read(scope, blob, key):
                pass
        ctx.store.check_sealed(scope, blob)
    except IntegrityError as exc:
        return rel, 0, exc.message
    return rel, blob.size, None

def _check_audit(
    ctx: CatalogContext, v: VersionRow, row: Any, files: Sequence[tuple[str, StoredBlob]],
    finding_rows: Sequence[Any],
) -> list[Problem]:
    problems: list[Problem] = []
    entries = ctx.workspace.audit.entries(subject=v.ref)
    added = [e for e in entries if e.action == f"{v.kind.value}.add"]
    if not added:
        return [Problem("audit", v.ref, "the audit log has no entry registering this version")]
    details = added[0].details
    expected = {
        "digest": row.digest,
        "card_sha256": sha_text(row.card),
        "signature_sha256": sha_text(row.signature),
        "key_id": row.key_id,
        "findings_sha256": findings_digest([(r.data, bool(r.accepted)) for r in finding_rows]),
        "blobs_sha256": blobs_digest(files),
    }
    names = {"digest": "version-row", "card_sha256": "card", "signature_sha256": "signature",
             "key_id": "signing-key", "findings_sha256": "findings", "blobs_sha256": "files-row"}
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
    for p in ctx.workspace.audit.verify().problems:
        if p.seq in seqs or p.kind.value in ("deleted", "truncated"):
            problems.append(Problem("audit", f"audit#{p.seq}", p.message))
    return problems

def _check_signer(
    ctx: CatalogContext, v: VersionRow, public_key: str | None, key_id: str, audited: Any
) -> list[Problem]:
    """The recorded signing key must be the one the registration audit entry names (a key
    swapped in the database is caught without re-checking every signature)."""
    try:
        signer_key(public_key, key_id, ctx.workspace.signer.verifying_key)
    except IntegrityError as exc:
        return [Problem("signing-key", v.ref, exc.message)]
    if audited is not None and audited != key_id:
        return [Problem(
            "signing-key", v.ref,
            f"signed with key {key_id[:16]}… but the audit log recorded {str(audited)[:16]}…",
        )]
    return []


def fsck(ctx: CatalogContext, *, clean: bool = False) -> FsckReport:
    """Cross-check database, blob store and audit chain; with ``clean``, remove orphans.

    Damage (a missing blob, a broken chain, a version without its audit entry) is reported
    and never "repaired"; orphans (scopes of interrupted adds, stray or half-written blobs,
    leftovers of destroyed versions) are harmless and removed with ``clean``.
    """
    problems: list[Problem] = []
    orphans: list[Problem] = []
    cleaned = 0
    with ctx.read() as conn:
        rows = [as_version(r) for r in conn.execute(
            select(*VERSION_COLUMNS).join(t.assets, t.assets.c.id == t.versions.c.asset_id)
        )]
        signers = {
            int(r.id): (r.public_key, r.key_id)
            for r in conn.execute(
                select(t.versions.c.id, t.versions.c.public_key, t.versions.c.key_id)
            )
        }
        referenced: dict[int, set[str]] = {}
        for f in conn.execute(select(t.files.c.version_id, t.files.c.sha256)):
            referenced.setdefault(int(f.version_id), set()).add(f.sha256)
    added = {
        e.subject: e.details.get("key_id")
        for k in Kind for e in ctx.workspace.audit.entries(action=f"{k.value}.add")
    }
    present = set(ctx.store.scopes())
    by_scope = {v.scope: v for v in rows}
    for v in rows:
        if v.ref not in added:
            problems.append(Problem("audit", v.ref, "no audit entry records its registration"))
        problems.extend(_check_signer(ctx, v, *signers[v.id], added.get(v.ref)))
        if v.status is Status.DESTROYED:
            if v.scope in present:
                orphans.append(Problem("orphan", v.scope, f"blobs of destroyed {v.ref}"))
                if clean:
                    ctx.store.delete_scope(v.scope)
                    cleaned += 1
            continue
        wanted = referenced.get(v.id, set())
        if v.scope not in present:
            if wanted:
                problems.append(Problem("blob", v.ref, "its blob scope is missing"))
            continue
        have = set(ctx.store.blobs(v.scope))
        for sha in sorted(wanted - have):
            problems.append(Problem("blob", v.ref, f"blob {sha[:16]}… is missing"))
        for sha in sorted(have - wanted):
            orphans.append(Problem("orphan", f"{v.scope}/{sha[:16]}…",
                                   f"blob in {v.ref}'s scope that no file names"))
            if clean:
                ctx.store.delete_blob(v.scope, sha)
                cleaned += 1
        if ctx.store.has_temporaries(v.scope) and ctx.store.is_abandoned(v.scope):
            orphans.append(Problem("orphan", v.scope, f"half-written blob in {v.ref}'s scope"))
            if clean:
                ctx.store.delete_temporaries(v.scope)
                cleaned += 1
    for scope in sorted(present - set(by_scope)):
        if not ctx.store.is_abandoned(scope):
            continue  # an add in progress holds it
        # An add commits before it releases the lock: a scope whose lock is free is either a
        # crashed add's or one committed since the rows above were read. Ask again.
        with ctx.read() as conn:
            if conn.execute(
                select(t.versions.c.id).where(t.versions.c.blob_scope == scope)
            ).first():
                continue
        orphans.append(Problem("orphan", scope, "blob scope of an interrupted add"))
        if clean:
            ctx.store.delete_scope(scope)
            cleaned += 1
    for p in ctx.workspace.audit.verify().problems:
        problems.append(Problem("audit", f"audit#{p.seq}", p.message))
    if clean and cleaned:
        ctx.workspace.audit.append(
            actor=ctx.actor, action="catalog.fsck.clean", subject="catalog",
            details={"removed": cleaned},
        )
    return FsckReport(len(rows), len(present), tuple(problems), tuple(orphans), cleaned)
