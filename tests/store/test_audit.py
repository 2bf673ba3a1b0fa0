from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, update

from bastion.store.audit import GENESIS_HASH, AuditLog, ProblemKind, entry_hash
from bastion.store.db import make_engine, migrate
from bastion.store.keys import SigningKey, create_signing_key
from bastion.store.schema import audit_checkpoints, audit_entries


@pytest.fixture
def signer(tmp_path: Path) -> SigningKey:
    return create_signing_key(tmp_path / "signing.pem")


@pytest.fixture
def log(database_url: str, signer: SigningKey, tmp_path: Path) -> Iterator[AuditLog]:
    engine = make_engine(database_url)
    migrate(engine)
    audit = AuditLog(
        engine, signer, checkpoint_every=1000, checkpoint_file=tmp_path / "checkpoint.json"
    )
    for i in range(1, 11):
        audit.append(
            actor=f"user{i % 3}",
            action="model.add" if i % 2 else "blob.read",
            subject=f"asset{i}",
            details={"n": i, "note": "é"},
        )
    yield audit
    engine.dispose()


def _rows(log: AuditLog) -> list[dict[str, object]]:
    with log._engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(audit_entries).order_by("seq")).mappings()]


def _kinds(log: AuditLog) -> list[tuple[ProblemKind, int]]:
    return [(p.kind, p.seq) for p in log.verify().problems]


def test_chain_links_each_entry_to_the_previous_hash(log: AuditLog) -> None:
    rows = _rows(log)
    assert [r["seq"] for r in rows] == list(range(1, 11))
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]
    # the hash is an independent recomputation over the stored text
    r = rows[4]
    assert r["hash"] == entry_hash(
        5,
        str(r["at"]),
        str(r["actor"]),
        str(r["action"]),
        str(r["subject"]),
        str(r["details"]),
        str(r["prev_hash"]),
    )
    assert json.loads(str(r["details"])) == {"n": 5, "note": "é"}


def test_intact_log_verifies_and_checkpoint_seals_it(log: AuditLog) -> None:
    before = log.verify()
    assert before.ok and before.entries == 10 and before.sealed_through == 0
    assert log.checkpoint() == 10
    after = log.verify()
    assert after.ok and after.sealed_through == 10 and after.unsealed == 0
    assert log.checkpoint() == 10  # idempotent: no second checkpoint for the same head
    with log._engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_checkpoints)).scalar() == 1


def test_filters(log: AuditLog) -> None:
    assert [e.seq for e in log.entries(subject="asset3")] == [3]
    assert {e.action for e in log.entries(action="model.*")} == {"model.add"}
    assert [e.seq for e in log.entries(actor="user0")] == [3, 6, 9]
    assert [e.seq for e in log.entries(limit=2)] == [9, 10]
    assert log.entries(since="2999-01-01") == []
    assert len(log.entries(since="2000-01-01")) == 10


def test_modified_entry_is_named(log: AuditLog) -> None:
    with log._engine.begin() as conn:
        conn.execute(update(audit_entries).where(audit_entries.c.seq == 4).values(actor="mallory"))
    assert _kinds(log) == [(ProblemKind.MODIFIED, 4)]


def test_rewritten_entry_with_recomputed_hash_breaks_the_next_link(log: AuditLog) -> None:
    row = _rows(log)[3]
    new_hash = entry_hash(
        4,
        str(row["at"]),
        "mallory",
        str(row["action"]),
        str(row["subject"]),
        str(row["details"]),
        str(row["prev_hash"]),
    )
    with log._engine.begin() as conn:
        conn.execute(
            update(audit_entries)
            .where(audit_entries.c.seq == 4)
            .values(actor="mallory", hash=new_hash)
        )
    kinds = _kinds(log)
    assert kinds and kinds[0][1] in (4, 5)
    assert any("#5" in p.message for p in log.verify().problems)


def test_rewritten_tail_is_caught_by_the_signed_checkpoint(log: AuditLog) -> None:
    log.checkpoint()
    rows = _rows(log)
    prev = str(rows[7]["prev_hash"])
    with log._engine.begin() as conn:  # re-chain entries 8..10 consistently
        for r in rows[7:]:
            h = entry_hash(
                int(r["seq"]),
                str(r["at"]),
                "mallory",
                str(r["action"]),
                str(r["subject"]),
                str(r["details"]),
                prev,
            )
            conn.execute(
                update(audit_entries)
                .where(audit_entries.c.seq == r["seq"])
                .values(actor="mallory", prev_hash=prev, hash=h)
            )
            prev = h
    assert _kinds(log) == [(ProblemKind.MODIFIED, 10)]


def test_deleted_entry_is_named(log: AuditLog) -> None:
    with log._engine.begin() as conn:
        conn.execute(delete(audit_entries).where(audit_entries.c.seq == 6))
    kinds = _kinds(log)
    assert (ProblemKind.DELETED, 6) in kinds


def test_inserted_entry_is_named(log: AuditLog) -> None:
    rows = _rows(log)
    with log._engine.begin() as conn:
        # shift 5..10 up by one (highest first) and forge a well-formed entry #5
        for r in reversed(rows[4:]):
            conn.execute(
                update(audit_entries)
                .where(audit_entries.c.seq == r["seq"])
                .values(seq=int(r["seq"]) + 1)
            )
        at, prev = str(rows[4]["at"]), str(rows[3]["hash"])
        forged = entry_hash(5, at, "mallory", "model.approve", "asset5", "{}", prev)
        conn.execute(
            insert(audit_entries).values(
                seq=5,
                at=at,
                actor="mallory",
                action="model.approve",
                subject="asset5",
                details="{}",
                prev_hash=prev,
                hash=forged,
            )
        )
    problems = log.verify().problems
    assert any(p.kind is ProblemKind.INSERTED and p.seq == 5 for p in problems), problems


def test_reordered_entries_are_named(log: AuditLog) -> None:
    rows = _rows(log)
    a, b = rows[2], rows[6]  # swap the contents of #3 and #7
    fields = ("at", "actor", "action", "subject", "details", "prev_hash", "hash")
    with log._engine.begin() as conn:
        conn.execute(
            update(audit_entries)
            .where(audit_entries.c.seq == 3)
            .values(**{k: b[k] for k in fields})
        )
        conn.execute(
            update(audit_entries)
            .where(audit_entries.c.seq == 7)
            .values(**{k: a[k] for k in fields})
        )
    kinds = _kinds(log)
    assert (ProblemKind.REORDERED, 3) in kinds and (ProblemKind.REORDERED, 7) in kinds


def test_truncated_tail_is_caught_against_the_checkpoint(log: AuditLog) -> None:
    log.checkpoint()
    with log._engine.begin() as conn:
        conn.execute(delete(audit_entries).where(audit_entries.c.seq > 7))
    assert (ProblemKind.TRUNCATED, 8) in _kinds(log)


def test_truncation_is_caught_even_when_checkpoint_rows_are_deleted(log: AuditLog) -> None:
    log.checkpoint()
    with log._engine.begin() as conn:
        conn.execute(delete(audit_entries).where(audit_entries.c.seq > 7))
        conn.execute(delete(audit_checkpoints))
    # the signed copy outside the database still covers #10
    assert (ProblemKind.TRUNCATED, 8) in _kinds(log)


def test_forged_checkpoint_signature_is_named(log: AuditLog) -> None:
    log.checkpoint()
    with log._engine.begin() as conn:
        conn.execute(update(audit_checkpoints).values(seq=9))
    assert (ProblemKind.BAD_CHECKPOINT, 9) in _kinds(log)


def test_automatic_checkpoint_every_n(database_url: str, signer: SigningKey) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    audit = AuditLog(engine, signer, checkpoint_every=4)
    for i in range(9):
        audit.append(actor="a", action="x", subject=str(i))
    with engine.connect() as conn:
        seqs = conn.execute(select(audit_checkpoints.c.seq).order_by("id")).scalars().all()
    assert seqs == [4, 8]
    assert audit.verify().sealed_through == 8
    engine.dispose()


def test_append_joins_the_callers_transaction(database_url: str, signer: SigningKey) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    audit = AuditLog(engine, signer)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        audit.append(actor="a", action="x", subject="rolled-back", connection=conn)
        raise RuntimeError("the change failed")
    assert audit.head() == 0  # the entry rolled back with the change it recorded
    engine.dispose()


def test_deleted_entry_with_renumbering_is_named(log: AuditLog) -> None:
    rows = _rows(log)
    with log._engine.begin() as conn:
        conn.execute(delete(audit_entries).where(audit_entries.c.seq == 4))
        for r in rows[4:]:  # close the gap: 5..10 become 4..9
            conn.execute(
                update(audit_entries)
                .where(audit_entries.c.seq == r["seq"])
                .values(seq=int(r["seq"]) - 1)
            )
    problems = log.verify().problems
    assert [(p.kind, p.seq) for p in problems] == [(ProblemKind.DELETED, 4)], problems
    assert "#4..#9 renumbered by -1" in problems[0].message
