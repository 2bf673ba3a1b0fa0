"""The catalog service on SQLite and PostgreSQL: registration, reads, lineage, tampering,
reviews, aliases, crypto-shredding."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from bastion.catalog.records import (
    Kind,
    ReadRefusedError,
    RegistrationRefusedError,
    Status,
)
from bastion.catalog.service import Catalog
from bastion.errors import AccessDeniedError, IntegrityError, NotFoundError, UsageError
from bastion.findings import Severity
from bastion.store.roles import Role
from bastion.store.workspace import Workspace

from .conftest import StubScanner

MakeModel = Callable[..., Path]
MakeData = Callable[..., Path]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def as_actor(workspace: Workspace, actor: str, scanner: StubScanner) -> Catalog:
    """The same workspace, acting as someone else."""
    from dataclasses import replace

    other = Workspace(replace(workspace.settings, actor=actor), workspace.engine,
                      workspace.signer, workspace.audit)
    return Catalog(other, scanner=scanner)


def sql(workspace: Workspace, statement: str, **params: object) -> None:
    with workspace.engine.begin() as conn:
        conn.execute(text(statement), params)


# -- registration ----------------------------------------------------------------------------


def test_add_records_manifest_card_lineage_and_audit(
    catalog: Catalog, workspace: Workspace, make_model: MakeModel, make_dataset: MakeData
) -> None:
    data_path = make_dataset()
    data = catalog.add_dataset("digits-train", data_path, card={
        "description": "handwritten digits", "collection": "scanned forms",
    })
    assert data.summary.ref == "digits-train@1"
    assert data.manifest == [{"path": data_path.name, "size": data_path.stat().st_size,
                              "sha256": digest(data_path)}]
    model_dir = make_model()
    info = catalog.add_model("digits", model_dir, trained_on=["digits-train@1"],
                             card={"description": "digit classifier", "tags": ["vision"]})
    assert info.summary.status is Status.DRAFT
    assert {m["path"] for m in info.manifest} == {"config.json", "weights/layer0.npy"}
    assert info.manifest[1]["sha256"] == digest(model_dir / "weights" / "layer0.npy")
    assert info.lineage == [("trained_on", "digits-train@1")]
    assert info.card["training_datasets"] == ["digits-train@1"]
    assert info.card["integrity"]["manifest_sha256"] == info.summary.digest
    assert info.collaborators == {"tester": "admin"}
    [entry] = workspace.audit.entries(action="model.add")
    assert entry.subject == "digits@1"
    assert entry.details["digest"] == info.summary.digest
    assert workspace.audit.verify().ok


def test_second_add_is_a_new_version(catalog: Catalog, make_model: MakeModel) -> None:
    catalog.add_model("m", make_model(seed=1))
    second = catalog.add_model("m", make_model(seed=2))
    assert second.summary.version == 2
    assert catalog.show("m").summary.version == 2
    assert catalog.show("m@1").summary.digest != second.summary.digest


def test_kind_mismatch_and_unknown_parent_are_refused(
    catalog: Catalog, make_model: MakeModel, make_dataset: MakeData
) -> None:
    catalog.add_dataset("d", make_dataset())
    with pytest.raises(UsageError, match="is a dataset"):
        catalog.add_model("d", make_model())
    with pytest.raises(NotFoundError):
        catalog.add_model("m", make_model(), trained_on=["nope@1"])
    with pytest.raises(UsageError, match="needs a version"):
        catalog.add_model("m", make_model(), trained_on=["d"])
    assert [s.ref for s in catalog.search()] == ["d@1"]


def test_symlinks_are_refused(catalog: Catalog, make_model: MakeModel, tmp_path: Path) -> None:
    model_dir = make_model()
    (model_dir / "link").symlink_to(tmp_path)
    with pytest.raises(UsageError, match="symbolic link"):
        catalog.add_model("m", model_dir)


def test_high_finding_refuses_and_stores_nothing(
    catalog: Catalog, scanner: StubScanner, workspace: Workspace, make_model: MakeModel
) -> None:
    scanner.flag(Severity.CRITICAL)
    with pytest.raises(RegistrationRefusedError) as refused:
        catalog.add_model("m", make_model())
    assert refused.value.exit_code == 1
    assert [f.rule for f in refused.value.findings] == ["pickle.global.unsafe"]
    assert catalog.search() == []
    assert catalog.store.scopes() == []
    assert workspace.audit.entries(action="model.add") == []


def test_accepted_risk_is_recorded_everywhere(
    catalog: Catalog, scanner: StubScanner, workspace: Workspace, make_model: MakeModel,
    tmp_path: Path,
) -> None:
    scanner.flag(Severity.HIGH)
    scanner.flag(Severity.LOW, rule="pickle.opcode.unusual")
    info = catalog.add_model("m", make_model(), accept_risk="reviewed by security, ticket 42")
    assert info.accepted_risk == "reviewed by security, ticket 42"
    [risk] = info.card["accepted_risks"]
    assert risk["reason"] == "reviewed by security, ticket 42"
    assert risk["findings"] == ["pickle.global.unsafe: pickle.global.unsafe found"]
    assert {f.rule for f in info.findings} == {"pickle.global.unsafe", "pickle.opcode.unusual"}
    [entry] = workspace.audit.entries(action="model.add")
    assert entry.details["accepted_risk"] == "reviewed by security, ticket 42"
    catalog.get("m@1", tmp_path / "out")  # accepted: readable


def test_unaccepted_high_finding_blocks_get(
    catalog: Catalog, workspace: Workspace, make_model: MakeModel, tmp_path: Path
) -> None:
    catalog.add_model("m", make_model())
    sql(workspace, "INSERT INTO findings (version_id, digest, severity, accepted, data) "
                   "SELECT id, digest, 'high', false, :data FROM versions",
        data=json.dumps({"rule": "data.poison", "severity": "high", "title": "poisoned",
                         "principle": "2.2"}))
    with pytest.raises(ReadRefusedError, match="unaccepted") as refused:
        catalog.get("m@1", tmp_path / "out")
    assert [f.rule for f in refused.value.findings] == ["data.poison"]  # what decided, carried
    assert not (tmp_path / "out").exists()
    assert [e.subject for e in workspace.audit.entries(action="model.read.refused")] == ["m@1"]


def test_real_scanner_refuses_a_malicious_pickle(
    workspace: Workspace, tmp_path: Path, canary: Path
) -> None:
    import pickle

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(canary), "w"))  # harmless if run: creates the canary

    model = tmp_path / "evil"
    model.mkdir()
    (model / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0], "hook": Payload()}))
    catalog = Catalog(workspace)  # the real scanner
    with pytest.raises(RegistrationRefusedError) as refused:
        catalog.add_model("evil", model)
    assert any(f.severity >= Severity.HIGH for f in refused.value.findings)
    assert catalog.search() == []
    assert not canary.exists()


def test_file_changed_between_scan_and_store_is_refused(
    workspace: Workspace, make_model: MakeModel
) -> None:
    from bastion.findings import Location
    from bastion.scan.interface import Format, ScannedFile, ScanReport

    model_dir = make_model()
    config = model_dir / "config.json"

    def scanner(path: Path) -> ScanReport:
        # What the scanner saw differs from what is stored a moment later.
        return ScanReport((), (ScannedFile(Location(str(config)), Format.UNKNOWN, 5, "0" * 64),))

    with pytest.raises(IntegrityError, match="changed while it was being registered"):
        Catalog(workspace, scanner=scanner).add_model("m", model_dir)
    assert Catalog(workspace, scanner=scanner).store.scopes() == []


# -- reading ---------------------------------------------------------------------------------


def test_get_writes_exact_files_and_audits(
    catalog: Catalog, workspace: Workspace, make_model: MakeModel, tmp_path: Path
) -> None:
    model_dir = make_model()
    catalog.add_model("m", model_dir)
    out = tmp_path / "out"
    catalog.get("m@1", out, signature=tmp_path / "m.sig")
    for rel in ("config.json", "weights/layer0.npy"):
        assert (out / rel).read_bytes() == (model_dir / rel).read_bytes()
    [read] = workspace.audit.entries(action="model.read")
    assert (read.actor, read.subject, read.details["dest"]) == ("tester", "m@1", str(out))
    with pytest.raises(UsageError, match="already exists"):
        catalog.get("m@1", out)


def test_exported_files_verify_with_model_signing(
    catalog: Catalog, workspace: Workspace, make_model: MakeModel, tmp_path: Path
) -> None:
    import model_signing

    catalog.add_model("m", make_model())
    catalog.get("m@1", tmp_path / "out", signature=tmp_path / "m.sig")
    model_signing.verifying.Config().use_elliptic_key_verifier(
        public_key=workspace.settings.signing_key_file.with_suffix(".pub.pem")
    ).verify(tmp_path / "out", tmp_path / "m.sig")


def test_search_filters(
    catalog: Catalog, make_model: MakeModel, make_dataset: MakeData
) -> None:
    catalog.add_dataset("faces", make_dataset(1), sensitivity="restricted",
                        card={"description": "portrait photographs"})
    catalog.add_model("digits", make_model(seed=1), card={"description": "MNIST classifier"})
    catalog.add_model("digits", make_model(seed=2))
    assert [s.ref for s in catalog.search()] == ["digits@2", "digits@1", "faces@1"]
    assert [s.ref for s in catalog.search(kind=Kind.DATASET)] == ["faces@1"]
    assert [s.ref for s in catalog.search(text="PORTRAIT")] == ["faces@1"]
    assert [s.ref for s in catalog.search(text="mnist")] == ["digits@1"]
    assert [s.ref for s in catalog.search(sensitivity="restricted")] == ["faces@1"]
    assert catalog.search(text="100%_") == []
    assert [s.ref for s in catalog.search(status=Status.DRAFT, limit=1)] == ["digits@2"]


def test_lineage_is_transitive_both_ways(
    catalog: Catalog, make_model: MakeModel, make_dataset: MakeData
) -> None:
    catalog.add_dataset("raw", make_dataset(1))
    catalog.add_dataset("clean", make_dataset(2), derived_from="raw@1")
    catalog.add_model("base", make_model(seed=1), trained_on=["clean@1"])
    catalog.add_model("tuned", make_model(seed=2), derived_from="base@1")
    catalog.add_model("other", make_model(seed=3))
    down = catalog.lineage("raw@1").downstream
    assert [(n.ref, n.relation, n.via, n.depth) for n in down] == [
        ("clean@1", "derived_from", "raw@1", 1),
        ("base@1", "trained_on", "clean@1", 2),
        ("tuned@1", "derived_from", "base@1", 3),
    ]
    up = catalog.lineage("tuned@1").upstream
    assert [n.ref for n in up] == ["base@1", "clean@1", "raw@1"]
    assert catalog.lineage("other@1").upstream == []


# -- verification and tampering --------------------------------------------------------------


@pytest.fixture
def registered(catalog: Catalog, make_model: MakeModel) -> Catalog:
    catalog.add_model("m", make_model())
    assert catalog.verify("m@1").ok
    return catalog


def kinds(catalog: Catalog) -> set[tuple[str, str]]:
    return {(p.kind, p.subject) for p in catalog.verify("m@1").problems}


def test_tampered_blob_is_named(registered: Catalog) -> None:
    blob = max(registered.store.root.glob("*/??/*"), key=lambda p: p.stat().st_size)
    raw = bytearray(blob.read_bytes())
    raw[100] ^= 0xFF
    blob.write_bytes(bytes(raw))
    [problem] = registered.verify("m@1").problems
    assert (problem.kind, problem.subject) == ("blob", "weights/layer0.npy")
    assert "changed at rest" in problem.message
    [problem] = registered.verify("m@1", deep=True).problems
    assert (problem.kind, problem.subject) == ("blob", "weights/layer0.npy")
    assert "chunk 0 fails authentication" in problem.message


def test_tampered_files_row_is_named(registered: Catalog, workspace: Workspace) -> None:
    sql(workspace, "UPDATE files SET sha256 = :s WHERE path = 'config.json'", s="0" * 64)
    found = kinds(registered)
    assert ("files-row", "config.json") in found
    assert ("blob", "config.json") in found  # the blob no longer hashes to the row
    assert ("version-row", "m@1") in found  # nor do the rows to the version's digest


def test_tampered_card_is_named(registered: Catalog, workspace: Workspace) -> None:
    with workspace.engine.begin() as conn:
        card = json.loads(conn.execute(text("SELECT card FROM versions")).scalar_one())
        card["description"] = "harmless, trust me"
        conn.execute(text("UPDATE versions SET card = :c"), {"c": json.dumps(card)})
    assert kinds(registered) == {("card", "m@1")}


def test_tampered_signature_is_named(
    registered: Catalog, workspace: Workspace, make_model: MakeModel
) -> None:
    registered.add_model("n", make_model(seed=9))
    sql(workspace, "UPDATE versions SET signature = (SELECT signature FROM versions v2 "
                   "WHERE v2.number = 1 AND v2.id <> versions.id) WHERE id = "
                   "(SELECT MIN(id) FROM versions)")
    found = kinds(registered)
    assert ("signature", "m@1") in found
    assert any(kind == "files-row" for kind, _ in found)


def test_status_forged_to_approved_is_named(registered: Catalog, workspace: Workspace) -> None:
    sql(workspace, "UPDATE versions SET status = 'approved'")
    [problem] = registered.verify("m@1").problems
    assert (problem.kind, problem.subject) == ("version-row", "m@1")
    assert "audit log last recorded 'draft'" in problem.message


def test_tampered_audit_entry_is_named(registered: Catalog, workspace: Workspace) -> None:
    sql(workspace, "UPDATE audit_entries SET details = replace(details, 'digest', 'digestX') "
                   "WHERE action = 'model.add'")
    found = kinds(registered)
    assert any(kind == "audit" and subject.startswith("audit#") for kind, subject in found)


def test_tampered_wrapped_key_is_named(registered: Catalog, workspace: Workspace) -> None:
    sql(workspace, "UPDATE versions SET wrapped_key = 'AAAA' || substr(wrapped_key, 5)")
    assert kinds(registered) == {("key", "m@1")}


def test_get_of_a_damaged_blob_writes_nothing(
    registered: Catalog, workspace: Workspace, tmp_path: Path
) -> None:
    blob = max(registered.store.root.glob("*/??/*"), key=lambda p: p.stat().st_size)
    raw = bytearray(blob.read_bytes())
    raw[-5] ^= 1
    blob.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="fails authentication"):
        registered.get("m@1", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".out", "out"))) == []
    [refused] = workspace.audit.entries(action="model.read.refused")
    assert "fails authentication" in refused.details["reason"]


def test_verify_without_the_kek_still_checks_blobs(
    registered: Catalog, workspace: Workspace, tmp_path: Path
) -> None:
    workspace.settings.kek_file.rename(tmp_path / "kek-elsewhere")
    [problem] = registered.verify("m@1").problems
    assert problem.kind == "key" and "missing" in problem.message
    blob = max(registered.store.root.glob("*/??/*"), key=lambda p: p.stat().st_size)
    blob.write_bytes(blob.read_bytes()[:-1])
    assert kinds(registered) == {("key", "m@1"), ("blob", "weights/layer0.npy")}


def test_get_refuses_rows_that_differ_from_the_signature(
    registered: Catalog, workspace: Workspace, tmp_path: Path
) -> None:
    sql(workspace, "UPDATE files SET path = '../escape.json' WHERE path = 'config.json'")
    with pytest.raises(IntegrityError, match="clean path"):
        registered.get("m@1", tmp_path / "out")
    assert not (tmp_path / "escape.json").exists()
    assert not (tmp_path / "out").exists()


def test_get_refuses_a_clean_row_renamed_after_signing(
    registered: Catalog, workspace: Workspace, tmp_path: Path
) -> None:
    """A row renamed to another clean path (config.json → run_me.py) passes every path check;
    only the comparison with the signed manifest stops it being written out."""
    sql(workspace, "UPDATE files SET path = 'run_me.py' WHERE path = 'config.json'")
    with pytest.raises(IntegrityError, match="differ from the signed manifest"):
        registered.get("m@1", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.bastion-*"))  # nor any half-written copy beside it
    (refused,) = workspace.audit.entries(action="model.read.refused")
    assert "signed manifest" in refused.details["reason"]


# -- fsck ------------------------------------------------------------------------------------


def test_fsck_finds_and_cleans_orphans(registered: Catalog, workspace: Workspace) -> None:
    store = registered.store
    orphan_scope = store.root / ("ab" * 16)
    (orphan_scope / "cd").mkdir(parents=True)
    (orphan_scope / "cd" / ("cd" * 32)).write_bytes(b"left by a crash")
    [scope] = [s for s in store.scopes() if s != "ab" * 16]
    (store.root / scope / "tmp-1234").write_bytes(b"half")
    report = registered.fsck()
    assert report.ok
    assert {o.subject for o in report.orphans} == {"ab" * 16, scope}
    cleaned = registered.fsck(clean=True)
    assert cleaned.cleaned == 2
    assert registered.fsck().orphans == ()
    assert registered.verify("m@1").ok
    cleanups = workspace.audit.entries(action="catalog.fsck.clean")
    assert [e.details["removed"] for e in cleanups] == [2]


def test_fsck_never_removes_a_version_committed_while_it_runs(
    workspace: Workspace, scanner: StubScanner, make_model: MakeModel
) -> None:
    from bastion.store.blobs import LocalBlobStore

    writer = Catalog(workspace, scanner=scanner)
    writer.add_model("m", make_model(seed=1))

    class RacingStore(LocalBlobStore):
        """An add commits between fsck reading the rows and listing the scopes."""

        raced = False

        def scopes(self) -> list[str]:
            if not self.raced:
                self.raced = True
                writer.add_model("m", make_model(seed=2))
            return super().scopes()

    checker = Catalog(workspace, scanner=scanner, store=RacingStore(writer.store.root))
    report = checker.fsck(clean=True)
    assert checker.store.raced  # type: ignore[attr-defined]
    assert report.cleaned == 0 and report.orphans == ()
    assert writer.verify("m@2", deep=True).ok


def test_fsck_reports_missing_blob(registered: Catalog) -> None:
    blob = next(registered.store.root.glob("*/??/*"))
    blob.unlink()
    report = registered.fsck()
    assert not report.ok
    assert [p.kind for p in report.problems] == ["blob"]


# -- reviews, aliases, rollback --------------------------------------------------------------


def test_review_rules(
    workspace: Workspace, scanner: StubScanner, make_model: MakeModel
) -> None:
    alice = Catalog(workspace, scanner=scanner, required_approvals=2)
    alice.add_model("m", make_model())  # workspace actor "tester" is the author
    bob = as_actor(workspace, "bob", scanner)
    carol = as_actor(workspace, "carol", scanner)
    with pytest.raises(UsageError, match="not in review"):
        alice.grant("m", "bob", Role.REVIEWER) or bob.approve("m@1")
    alice.grant("m", "carol", Role.REVIEWER)
    alice.request_review("m@1")
    with pytest.raises(AccessDeniedError, match="cannot approve"):
        alice.approve("m@1")  # admin, but the author
    dave = as_actor(workspace, "dave", scanner)
    with pytest.raises(AccessDeniedError, match="needs the reviewer role"):
        dave.approve("m@1")
    bob2 = Catalog(bob.workspace, scanner=scanner, required_approvals=2)
    carol2 = Catalog(carol.workspace, scanner=scanner, required_approvals=2)
    assert bob2.approve("m@1", "looks fine") is Status.IN_REVIEW
    with pytest.raises(UsageError, match="already approved"):
        bob2.approve("m@1")
    assert carol2.approve("m@1") is Status.APPROVED
    assert alice.show("m@1").summary.status is Status.APPROVED
    assert [r["decision"] for r in alice.show("m@1").reviews] == ["requested", "approve", "approve"]
    assert alice.verify("m@1").ok


def test_reject_returns_to_draft_and_needs_a_comment(
    workspace: Workspace, scanner: StubScanner, make_model: MakeModel
) -> None:
    author = Catalog(workspace, scanner=scanner)
    author.add_model("m", make_model())
    author.grant("m", "bob", Role.REVIEWER)
    author.request_review("m@1")
    bob = as_actor(workspace, "bob", scanner)
    with pytest.raises(UsageError, match="what must change"):
        bob.reject("m@1")
    assert bob.reject("m@1", "document the training data") is Status.DRAFT
    author.request_review("m@1")
    assert bob.approve("m@1") is Status.APPROVED


def test_production_alias_needs_approval_and_rolls_back(
    workspace: Workspace, scanner: StubScanner, make_model: MakeModel
) -> None:
    author = Catalog(workspace, scanner=scanner)
    bob = as_actor(workspace, "bob", scanner)
    for seed in (1, 2, 3):
        author.add_model("m", make_model(seed=seed))
    author.grant("m", "bob", Role.REVIEWER)
    with pytest.raises(AccessDeniedError, match="approved"):
        author.set_alias("m", "production", 1)
    for number in (1, 2, 3):
        author.request_review(f"m@{number}")
        bob.approve(f"m@{number}")
        author.set_alias("m", "production", number)
    assert author.show("m@production").summary.version == 3
    assert author.rollback("m") == "m@2"
    assert author.show("m@production").summary.version == 2
    assert author.rollback("m") == "m@1"
    with pytest.raises(UsageError, match="no earlier version"):
        author.rollback("m")
    author.set_alias("m", "staging", 3)
    assert author.show("m@staging").aliases == ["staging"]
    assert [e.action for e in workspace.audit.entries(subject="m@production")][-2:] == [
        "alias.rollback", "alias.rollback"
    ]


def test_viewer_cannot_add_or_move_aliases(
    workspace: Workspace, scanner: StubScanner, make_model: MakeModel, tmp_path: Path
) -> None:
    author = Catalog(workspace, scanner=scanner)
    author.add_model("m", make_model(seed=1))
    author.grant("m", "vic", Role.VIEWER)
    vic = as_actor(workspace, "vic", scanner)
    with pytest.raises(AccessDeniedError, match="contributor"):
        vic.add_model("m", make_model(seed=2))
    with pytest.raises(AccessDeniedError):
        vic.set_alias("m", "staging", 1)
    vic.get("m@1", tmp_path / "out")
    stranger = as_actor(workspace, "eve", scanner)
    with pytest.raises(AccessDeniedError, match="read"):
        stranger.get("m@1", tmp_path / "out2")


# -- crypto-shredding ------------------------------------------------------------------------


def test_destroy_shreds_one_version_only(
    catalog: Catalog, workspace: Workspace, make_model: MakeModel, tmp_path: Path
) -> None:
    import shutil

    from bastion.store.blobs import StoredBlob
    from bastion.store.keys import load_kek, unwrap_key

    catalog.add_model("m", make_model(seed=1))
    catalog.add_model("m", make_model(seed=2))
    with workspace.engine.connect() as conn:
        scope, wrapped = conn.execute(
            text("SELECT blob_scope, wrapped_key FROM versions WHERE number = 1")
        ).one()
        row = conn.execute(text("SELECT sha256, size, blob_id, blob_sha256 FROM files f "
                                "JOIN versions v ON "
                                "v.id = f.version_id WHERE v.number = 1 LIMIT 1")).one()
    backup = tmp_path / "backup"
    shutil.copytree(catalog.store.root / scope, backup)  # an attacker's copy of the disk
    catalog.destroy("m@1", "retention period ended")
    assert not (catalog.store.root / scope).exists()
    with pytest.raises(IntegrityError, match="destroyed"):
        catalog.get("m@1", tmp_path / "out")
    with workspace.engine.connect() as conn:
        assert conn.execute(
            text("SELECT wrapped_key FROM versions WHERE number = 1")
        ).scalar_one() is None
    # The copied ciphertext is useless without the shredded key; a guessed key fails.
    from bastion.store.blobs import LocalBlobStore
    from bastion.store.keys import new_data_key

    shutil.copytree(backup, tmp_path / "restored" / scope)
    restored = LocalBlobStore(tmp_path / "restored")
    blob = StoredBlob(row.sha256, int(row.size), row.blob_id, row.blob_sha256)
    with pytest.raises(IntegrityError):
        b"".join(restored.read(scope, blob, new_data_key()))
    # Only with the key that no longer exists would it open (the test kept a copy to prove it).
    key = unwrap_key(load_kek(workspace.settings.kek_file), wrapped, scope)
    assert hashlib.sha256(b"".join(restored.read(scope, blob, key))).hexdigest() == row.sha256
    catalog.get("m@2", tmp_path / "out2")  # the other version is untouched
    assert catalog.verify("m@2", deep=True).ok
    assert catalog.verify("m@1").ok  # records intact; the content is gone by design
    assert catalog.fsck().ok


def test_required_approvals_come_from_config(workspace: Workspace) -> None:
    import yaml

    config = workspace.settings.config_file
    data = yaml.safe_load(config.read_text())
    assert Catalog(workspace).required_approvals == 1
    config.write_text(yaml.safe_dump({**data, "catalog": {"required_approvals": 3}}))
    assert Catalog(workspace).required_approvals == 3
    config.write_text(yaml.safe_dump({**data, "catalog": {"required_approvals": 0}}))
    with pytest.raises(UsageError, match="required_approvals must be a positive integer"):
        Catalog(workspace)


# -- a user's own signing key ----------------------------------------------------------------


@pytest.fixture
def user_key(tmp_path: Path) -> tuple[Path, bytes, str]:
    """A user's P-256 key outside the workspace: (private key file, public PEM, key id)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "alice" / "alice.pem"
    path.parent.mkdir()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = key.public_key().public_bytes(serialization.Encoding.DER, spki)
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, spki)
    return path, pem, hashlib.sha256(der).hexdigest()


def test_a_user_key_signs_and_only_its_public_half_is_recorded(
    catalog: Catalog, workspace: Workspace, make_model: MakeModel, make_dataset: MakeData,
    user_key: tuple[Path, bytes, str], tmp_path: Path,
) -> None:
    import model_signing

    key_file, public_pem, key_id = user_key
    assert key_id != workspace.signer.verifying_key.key_id
    info = catalog.add_model("m", make_model(), signing_key=key_file)
    data = catalog.add_dataset("d", make_dataset(), signing_key=key_file)
    plain = catalog.add_model("w", make_model(seed=3))
    assert (info.key_id, data.key_id) == (key_id, key_id)
    assert info.public_key == public_pem.decode()
    assert plain.key_id == workspace.signer.verifying_key.key_id
    [added] = workspace.audit.entries(action="model.add", subject="m@1")
    assert (added.details["key_id"], added.details["signer"]) == (key_id, "user")
    secret = key_file.read_text().splitlines()[1]  # a line of the private key's base64
    for path in workspace.settings.home.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert catalog.verify("m@1").ok and catalog.verify("d@1").ok and catalog.verify("w@1").ok
    assert catalog.fsck().ok
    catalog.get("m@1", tmp_path / "out", signature=tmp_path / "m.sig")
    (tmp_path / "alice.pub.pem").write_bytes(public_pem)
    model_signing.verifying.Config().use_elliptic_key_verifier(
        public_key=tmp_path / "alice.pub.pem"
    ).verify(tmp_path / "out", tmp_path / "m.sig")
    with pytest.raises(ValueError, match="Key mismatch"):  # the workspace key did not sign it
        model_signing.verifying.Config().use_elliptic_key_verifier(
            public_key=workspace.settings.signing_key_file.with_suffix(".pub.pem")
        ).verify(tmp_path / "out", tmp_path / "m.sig")


def test_a_swapped_public_key_fails_verify_get_and_fsck(
    catalog: Catalog, workspace: Workspace, make_model: MakeModel,
    user_key: tuple[Path, bytes, str], tmp_path: Path,
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    catalog.add_model("m", make_model(), signing_key=user_key[0])
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_pem = other.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    other_id = hashlib.sha256(other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )).hexdigest()
    # 1. The key alone: it no longer hashes to the recorded key id.
    sql(workspace, "UPDATE versions SET public_key = :p", p=other_pem)
    assert ("signature", "m@1") in kinds(catalog)
    assert [p.kind for p in catalog.fsck().problems] == ["signing-key"]
    with pytest.raises(IntegrityError, match="not the key the version names"):
        catalog.get("m@1", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # 2. Key and id together: the signature does not verify, and the audit log disagrees.
    sql(workspace, "UPDATE versions SET key_id = :k", k=other_id)
    assert kinds(catalog) == {("signature", "m@1"), ("signing-key", "m@1")}
    [problem] = catalog.fsck().problems
    assert problem.kind == "signing-key" and "audit log recorded" in problem.message
    with pytest.raises(IntegrityError, match="another key"):
        catalog.get("m@1", tmp_path / "out")
    # 3. Restored, everything verifies again: the checks above named only the swap.
    sql(workspace, "UPDATE versions SET public_key = :p, key_id = :k",
        p=user_key[1].decode(), k=user_key[2])
    assert catalog.verify("m@1").ok and catalog.fsck().ok


def test_a_rejected_user_key_stores_nothing(
    catalog: Catalog, workspace: Workspace, make_model: MakeModel,
    user_key: tuple[Path, bytes, str], scanner: StubScanner,
) -> None:
    from bastion.errors import ConfigError

    user_key[0].chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users"):
        catalog.add_model("m", make_model(), signing_key=user_key[0])
    assert scanner.calls == []  # refused before the scan: nothing was read or written
    assert catalog.search() == [] and list(catalog.store.scopes()) == []
    assert workspace.audit.entries(action="model.add") == []


def test_default_scanner_binds_results_to_digests(
    workspace: Workspace, make_model: MakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan a registration relies on carries digests: without them a file changed between
    scanning and storing could not be caught."""
    import bastion.scan

    seen: list[bool] = []
    real = bastion.scan.scan

    def recording(*paths: Path, digest: bool = False, **kw: object) -> object:
        seen.append(digest)
        return real(*paths, digest=digest, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(bastion.scan, "scan", recording)
    Catalog(workspace).add_model("m", make_model())
    assert seen == [True]
