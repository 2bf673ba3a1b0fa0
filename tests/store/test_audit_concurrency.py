"""Eight processes appending at once must never fork the chain (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import select

from bastion.store.audit import AuditLog
from bastion.store.db import make_engine, migrate
from bastion.store.keys import SigningKey, create_signing_key
from bastion.store.schema import audit_entries

WORKERS = 8
APPENDS = 200


def _worker(url: str, key: str, worker: int, start: multiprocessing.synchronize.Event) -> None:
    engine = make_engine(url)
    log = AuditLog(engine, SigningKey.from_file(Path(key)), checkpoint_every=100)
    start.wait()
    for i in range(APPENDS):
        log.append(actor=f"w{worker}", action="test.append", subject=f"{worker}:{i}")
    engine.dispose()


@pytest.mark.slow
def test_concurrent_appends_from_eight_processes_keep_one_chain(
    database_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "signing.pem"
    signer = create_signing_key(key)
    engine = make_engine(database_url)
    migrate(engine)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_worker, args=(database_url, str(key), w, start)) for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * WORKERS

    log = AuditLog(engine, signer)
    result = log.verify()
    assert result.ok, result.problems
    assert result.entries == WORKERS * APPENDS
    with engine.connect() as conn:
        seqs = conn.execute(select(audit_entries.c.seq).order_by("seq")).scalars().all()
        subjects = conn.execute(select(audit_entries.c.subject)).scalars().all()
    assert seqs == list(range(1, WORKERS * APPENDS + 1))
    assert sorted(subjects) == sorted(f"{w}:{i}" for w in range(WORKERS) for i in range(APPENDS))
    # automatic checkpoints every 100 entries, all valid
    assert result.sealed_through == WORKERS * APPENDS
    engine.dispose()
