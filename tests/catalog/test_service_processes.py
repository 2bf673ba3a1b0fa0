"""The catalog under real processes: eight concurrent adds, and ``kill -9`` during ``add``.

Both use the real scanner on a shared workspace, on SQLite and on PostgreSQL; the crash test
runs the real CLI (``bastion model add``) in a subprocess and kills it.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from bastion.catalog.service import Catalog
from bastion.store.workspace import Workspace

CLI = "import sys; from bastion.cli.app import main; sys.exit(main(sys.argv[1:]))"


def cli(workspace: Workspace, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, BASTION_HOME=str(workspace.settings.home))
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def weights(directory: Path, seed: int, megabytes: int) -> Path:
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    np.save(directory / "weights.npy", rng.random(megabytes * 131072))  # float64: 1 MiB per 131072
    (directory / "config.json").write_text(f'{{"seed": {seed}}}')
    return directory


def _add_in_child(home: str, source: str, ready: Any, go: Any) -> None:
    workspace = Workspace.open(Path(home))
    try:
        ready.release()
        go.wait(60)  # start all eight writers together
        Catalog(workspace).add_model("shared", Path(source))
    finally:
        workspace.close()


def test_eight_concurrent_adds(workspace: Workspace, tmp_path: Path) -> None:
    # Forked processes (not threads) share nothing but the database and the blob directory.
    ctx = multiprocessing.get_context("fork")
    ready, go = ctx.Semaphore(0), ctx.Event()
    sources = [weights(tmp_path / f"m{i}", i, 1) for i in range(8)]
    procs = [
        ctx.Process(target=_add_in_child,
                    args=(str(workspace.settings.home), str(s), ready, go))
        for s in sources
    ]
    for p in procs:
        p.start()
    for _ in procs:
        assert ready.acquire(timeout=120)
    go.set()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * 8
    catalog = Catalog(workspace)
    versions = catalog.search(limit=100)
    assert sorted(v.version for v in versions) == list(range(1, 9))
    assert len({v.digest for v in versions}) == 8
    for v in versions:
        assert catalog.verify(v.ref).ok
    assert len(workspace.audit.entries(action="model.add")) == 8
    assert workspace.audit.verify().ok
    report = catalog.fsck()
    assert report.ok and report.orphans == ()


@pytest.mark.slow
def test_kill_9_during_add_leaves_old_or_new_state(workspace: Workspace, tmp_path: Path) -> None:
    catalog = Catalog(workspace)
    rng = random.Random(20261128)
    blobs = Path(workspace.settings.blob_url)
    committed = 0
    orphans_seen = 0
    for attempt in range(4):
        source = weights(tmp_path / f"k{attempt}", attempt, 24)
        before = set(os.listdir(blobs)) if blobs.exists() else set()
        proc = cli(workspace, "model", "add", "victim", str(source))
        if attempt == 0:
            time.sleep(rng.uniform(0.05, 0.5))  # somewhere in start-up or scanning
        else:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if set(os.listdir(blobs)) - before:  # the add has started writing blobs
                    break
                time.sleep(0.002)
            # The first kill lands at once (mid-encryption, before the commit, so an orphan
            # is certain); the others anywhere up to well past the commit.
            time.sleep(0.0 if attempt == 1 else rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        versions = catalog.search()
        # Old state or new state: every version present is whole and verifies.
        assert len(versions) in (committed, committed + 1)
        committed = len(versions)
        for v in versions:
            assert catalog.verify(v.ref).ok, catalog.verify(v.ref).problems
        report = catalog.fsck()
        assert report.ok, report.problems
        orphans_seen += len(report.orphans)
        cleaned = catalog.fsck(clean=True)
        assert cleaned.cleaned == len(report.orphans)
        assert catalog.fsck().orphans == ()
        with workspace.engine.connect() as conn:
            named = set(conn.execute(text("SELECT blob_scope FROM versions")).scalars())
        assert set(catalog.store.scopes()) == named  # nothing left that no version names
    assert orphans_seen >= 1, "no kill landed while blobs were being written"
    assert workspace.audit.verify().ok
