"""``bastion list`` / search over 10,000 versions on SQLite and PostgreSQL. Target: < 100 ms.

The catalog is filled with 1,000 assets of 10 versions each through the real schema (rows
inserted in bulk: registering 10,000 encrypted versions one by one would measure ``add``, not
``list``). Each query runs through :meth:`Catalog.search` (SQL, rows → records) and, as the
baseline, as the bare SQL ``SELECT`` of the same rows without Bastion around it.

    python bench/catalog_list.py [--versions 10000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text

from bastion.catalog.records import Kind, Status
from bastion.catalog.service import Catalog
from bastion.store import schema as t
from bastion.store.workspace import init_workspace

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WORDS = ["digits", "faces", "fraud", "churn", "speech", "vision", "text", "tabular", "sensor"]
LEVELS = ["public", "internal", "confidential", "restricted"]
STATUSES = [s.value for s in Status]


def fill(catalog: Catalog, engine: Any, versions: int) -> None:
    per_asset = 10
    with engine.begin() as conn:
        for a in range(versions // per_asset):
            kind = Kind.MODEL if a % 3 else Kind.DATASET
            name = f"{WORDS[a % len(WORDS)]}-{a:05d}"
            level = LEVELS[a % len(LEVELS)]
            asset_id = conn.execute(insert(t.assets).values(
                kind=kind.value, name=name, owner="bench", sensitivity=level,
                created_at="2026-11-28T00:00:00.000000Z",
            ).returning(t.assets.c.id)).scalar_one()
            conn.execute(insert(t.versions), [
                {
                    "asset_id": asset_id, "number": n + 1, "status": STATUSES[(a + n) % 5],
                    "digest": uuid.uuid4().hex * 2, "author": "bench",
                    "created_at": "2026-11-28T00:00:00.000000Z", "card": "{}",
                    "signature": "{}", "key_id": "0" * 64, "blob_scope": uuid.uuid4().hex,
                    "wrapped_key": None, "file_count": 3, "total_size": 1 << 20,
                    "search_text": f"{name} {kind.value} {level} a {WORDS[n % 9]} model "
                                   f"for {WORDS[(a + n) % 9]} tasks, version {n + 1}",
                }
                for n in range(per_asset)
            ])


def timed(call: Callable[[], Any], runs: int = 25) -> tuple[float, int]:
    call()  # warm the cache and the statement cache
    samples = []
    result: Any = None
    for _ in range(runs):
        start = time.perf_counter()
        result = call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000, len(result)


def run(label: str, catalog: Catalog, engine: Any) -> None:
    queries: list[tuple[str, Callable[[], Any], str]] = [
        ("list (newest 100)", catalog.search,
         "SELECT 1 FROM versions v JOIN assets a ON a.id = v.asset_id "
         "ORDER BY a.name, v.number DESC LIMIT 100"),
        ("--kind dataset", lambda: catalog.search(kind=Kind.DATASET),
         "SELECT 1 FROM versions v JOIN assets a ON a.id = v.asset_id WHERE a.kind = 'dataset' "
         "ORDER BY a.name, v.number DESC LIMIT 100"),
        ("--q fraud (text)", lambda: catalog.search(text="fraud"),
         "SELECT 1 FROM versions v JOIN assets a ON a.id = v.asset_id "
         "WHERE v.search_text LIKE '%fraud%' ORDER BY a.name, v.number DESC LIMIT 100"),
        ("--sensitivity restricted --status approved",
         lambda: catalog.search(sensitivity="restricted", status=Status.APPROVED),
         "SELECT 1 FROM versions v JOIN assets a ON a.id = v.asset_id WHERE a.sensitivity = "
         "'restricted' AND v.status = 'approved' ORDER BY a.name, v.number DESC LIMIT 100"),
        ("--q 'no such words' (full scan, 0 rows)", lambda: catalog.search(text="no such words"),
         "SELECT 1 FROM versions v JOIN assets a ON a.id = v.asset_id "
         "WHERE v.search_text LIKE '%no such words%' ORDER BY a.name, v.number DESC LIMIT 100"),
    ]
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM versions")).scalar_one()
    print(f"\n{label}: {total} versions")
    print(f"  {'query':44} {'bastion':>10} {'bare SQL':>10} {'rows':>5}")
    for name, call, sql in queries:
        ours, rows = timed(call)

        def bare(sql: str = sql) -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(text(sql)))

        raw, _ = timed(bare)
        verdict = "ok" if ours < 100 else "OVER 100 ms"
        print(f"  {name:44} {ours:8.2f}ms {raw:8.2f}ms {rows:5}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--postgres", default=PG_ADMIN)
    args = parser.parse_args()
    os.environ.setdefault("BASTION_ACTOR", "bench")
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "sqlite", env={"BASTION_ACTOR": "bench"})
        try:
            catalog = Catalog(ws)
            fill(catalog, ws.engine, args.versions)
            run("SQLite", catalog, ws.engine)
        finally:
            ws.close()
        name = f"bastion_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = args.postgres.rsplit("/", 1)[0] + f"/{name}"
            ws = init_workspace(Path(tmp) / "pg",
                                env={"BASTION_ACTOR": "bench", "BASTION_DATABASE_URL": url})
            try:
                catalog = Catalog(ws)
                fill(catalog, ws.engine, args.versions)
                with ws.engine.connect() as conn:
                    conn.execute(text("ANALYZE"))
                    conn.commit()
                run("PostgreSQL", catalog, ws.engine)
            finally:
                ws.close()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
