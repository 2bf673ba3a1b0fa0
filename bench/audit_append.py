"""Audit log append rate on SQLite and PostgreSQL, beside the raw operation it builds on.

Baseline: one plain INSERT of a row of the same shape per transaction, with the same engine
settings (WAL, synchronous=FULL on SQLite), so the ratio shows what chaining, hashing and
serialising the writers cost. Also measured: 4 processes appending at once (the chain lock).

    python bench/audit_append.py [--n 2000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import MetaData, Table, create_engine, insert, text

from bastion.store.audit import AuditLog
from bastion.store.db import make_engine, migrate
from bastion.store.keys import SigningKey, create_signing_key
from bastion.store.schema import audit_entries

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _raw_inserts(url: str, n: int) -> float:
    engine = make_engine(url)
    raw = Table("bench_raw", MetaData(), *(c._copy() for c in audit_entries.columns))
    raw.drop(engine, checkfirst=True)
    raw.create(engine)
    start = time.perf_counter()
    for i in range(n):
        with engine.begin() as conn:
            conn.execute(
                insert(raw).values(
                    seq=100 + i,
                    at="2026-01-01T00:00:00.000000Z",
                    actor="bench",
                    action="bench.raw",
                    subject=f"s{i}",
                    details="{}",
                    prev_hash="0" * 64,
                    hash="0" * 64,
                )
            )
    elapsed = time.perf_counter() - start
    engine.dispose()
    return n / elapsed


def _appends(url: str, key: Path, n: int) -> float:
    engine = make_engine(url)
    log = AuditLog(engine, SigningKey.from_file(key))
    start = time.perf_counter()
    for i in range(n):
        log.append(actor="bench", action="bench.append", subject=f"s{i}", details={"i": i})
    elapsed = time.perf_counter() - start
    engine.dispose()
    return n / elapsed


def _worker(url: str, key: str, n: int) -> None:
    engine = make_engine(url)
    log = AuditLog(engine, SigningKey.from_file(Path(key)))
    for i in range(n):
        log.append(actor="bench", action="bench.parallel", subject=f"p{i}")
    engine.dispose()


def _parallel(url: str, key: Path, n: int, procs: int = 4) -> float:
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(url, str(key), n // procs)) for _ in range(procs)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return (n // procs * procs) / (time.perf_counter() - start)


def _bench(name: str, url: str, key: Path, n: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    _raw_inserts(url, 50), _appends(url, key, 50)  # warm-up: files, caches, connections
    raw = _raw_inserts(url, n)
    chained = _appends(url, key, n)
    parallel = _parallel(url, key, n)
    verify_engine = make_engine(url)
    log = AuditLog(verify_engine, SigningKey.from_file(key))
    start = time.perf_counter()
    result = log.verify()
    verify_s = time.perf_counter() - start
    verify_engine.dispose()
    print(
        f"{name:<10} raw INSERT {raw:8.0f}/s | audit append {chained:8.0f}/s "
        f"(ratio {chained / raw:.2f}) | 4 processes {parallel:8.0f}/s | "
        f"verify {result.entries} entries in {verify_s:.2f}s ({'ok' if result.ok else 'BROKEN'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--postgres", default=PG_ADMIN)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "signing.pem"
        create_signing_key(key)
        _bench("SQLite", f"sqlite:///{tmp}/bench.db", key, args.n)
        name = f"bastion_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
            _bench("PostgreSQL", url, key, args.n)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
