"""The encrypted blob store: round trips, and every kind of damage detected and named."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from bastion.errors import IntegrityError
from bastion.store.blobs import LocalBlobStore, StoredBlob, new_scope
from bastion.store.keys import new_data_key, unwrap_key, wrap_key

CHUNK = 1024
RECORD = 12 + CHUNK + 16
HEADER = 29


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs", chunk_size=CHUNK)


def put(store: LocalBlobStore, tmp_path: Path, data: bytes) -> tuple[str, StoredBlob, bytes]:
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    scope, key = new_scope(), new_data_key()
    with store.writer(scope) as writer:
        blob = writer.put_file(source, key)
    return scope, blob, key


def blob_path(store: LocalBlobStore, scope: str, blob: StoredBlob) -> Path:
    return store.root / scope / blob.sha256[:2] / blob.sha256


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 17])
def test_round_trip_at_chunk_edges(store: LocalBlobStore, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    scope, blob, key = put(store, tmp_path, data)
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.size == size
    assert b"".join(store.read(scope, blob, key)) == data


def test_stored_bytes_are_not_the_plaintext(store: LocalBlobStore, tmp_path: Path) -> None:
    data = b"secret weights " * 500
    scope, blob, _ = put(store, tmp_path, data)
    stored = blob_path(store, scope, blob).read_bytes()
    assert b"secret weights" not in stored
    assert len(stored) == HEADER + len(data) + (len(data) // CHUNK + 1) * 28


def read_all(store: LocalBlobStore, scope: str, blob: StoredBlob, key: bytes) -> bytes:
    return b"".join(store.read(scope, blob, key))


def test_flipped_bit_names_the_chunk(store: LocalBlobStore, tmp_path: Path) -> None:
    scope, blob, key = put(store, tmp_path, os.urandom(3 * CHUNK + 5))
    path = blob_path(store, scope, blob)
    raw = bytearray(path.read_bytes())
    raw[HEADER + RECORD + 40] ^= 1  # inside chunk 1
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="chunk 1 fails authentication"):
        read_all(store, scope, blob, key)


def test_truncation_at_a_chunk_boundary_is_detected(store: LocalBlobStore, tmp_path: Path) -> None:
    scope, blob, key = put(store, tmp_path, os.urandom(3 * CHUNK + 5))
    path = blob_path(store, scope, blob)
    path.write_bytes(path.read_bytes()[: HEADER + 2 * RECORD])
    with pytest.raises(IntegrityError, match="truncated"):
        read_all(store, scope, blob, key)


def test_truncation_inside_the_last_chunk_is_detected(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    scope, blob, key = put(store, tmp_path, os.urandom(3 * CHUNK + 500))
    path = blob_path(store, scope, blob)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IntegrityError, match="chunk 3 fails authentication"):
        read_all(store, scope, blob, key)


def test_reordered_chunks_are_detected(store: LocalBlobStore, tmp_path: Path) -> None:
    scope, blob, key = put(store, tmp_path, os.urandom(3 * CHUNK + 5))
    path = blob_path(store, scope, blob)
    raw = path.read_bytes()
    c0, c1 = raw[HEADER : HEADER + RECORD], raw[HEADER + RECORD : HEADER + 2 * RECORD]
    path.write_bytes(raw[:HEADER] + c1 + c0 + raw[HEADER + 2 * RECORD :])
    with pytest.raises(IntegrityError, match="chunk 0 fails authentication"):
        read_all(store, scope, blob, key)


def test_appended_chunk_after_final_is_detected(store: LocalBlobStore, tmp_path: Path) -> None:
    scope, blob, key = put(store, tmp_path, os.urandom(2 * CHUNK))  # final chunk is empty
    path = blob_path(store, scope, blob)
    raw = path.read_bytes()
    path.write_bytes(raw + raw[HEADER : HEADER + RECORD])
    with pytest.raises(IntegrityError):
        read_all(store, scope, blob, key)


def test_blob_from_another_address_is_detected(store: LocalBlobStore, tmp_path: Path) -> None:
    scope, key = new_scope(), new_data_key()
    (tmp_path / "a").write_bytes(b"a" * 3000)
    (tmp_path / "b").write_bytes(b"b" * 3000)
    with store.writer(scope) as writer:
        a = writer.put_file(tmp_path / "a", key)
        b = writer.put_file(tmp_path / "b", key)
    blob_path(store, scope, a).write_bytes(blob_path(store, scope, b).read_bytes())
    with pytest.raises(IntegrityError, match="blob id differs"):
        read_all(store, scope, a, key)


def test_sealed_digest_detects_change_without_the_key(
    store: LocalBlobStore, tmp_path: Path
) -> None:
    scope, blob, _ = put(store, tmp_path, os.urandom(3000))
    path = blob_path(store, scope, blob)
    assert blob.sealed_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    store.check_sealed(scope, blob)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="changed at rest"):
        store.check_sealed(scope, blob)


def test_wrong_key_fails(store: LocalBlobStore, tmp_path: Path) -> None:
    scope, blob, _ = put(store, tmp_path, b"x" * 100)
    with pytest.raises(IntegrityError, match="chunk 0 fails authentication"):
        read_all(store, scope, blob, new_data_key())


def test_missing_blob_is_named(store: LocalBlobStore, tmp_path: Path) -> None:
    scope, blob, key = put(store, tmp_path, b"x" * 100)
    blob_path(store, scope, blob).unlink()
    with pytest.raises(IntegrityError, match="missing"):
        read_all(store, scope, blob, key)


def test_wrapped_key_is_bound_to_its_scope() -> None:
    kek, key = os.urandom(32), new_data_key()
    scope, other = new_scope(), new_scope()
    wrapped = wrap_key(kek, key, scope)
    assert unwrap_key(kek, wrapped, scope) == key
    with pytest.raises(IntegrityError, match="does not unwrap"):
        unwrap_key(kek, wrapped, other)
    with pytest.raises(IntegrityError, match="does not unwrap"):
        unwrap_key(os.urandom(32), wrapped, scope)


def test_memory_stays_bounded_for_a_large_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", chunk_size=256 * 1024)
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(64):
            out.write(os.urandom(512 * 1024))  # 32 MiB
    scope, key = new_scope(), new_data_key()
    tracemalloc.start()
    try:
        with store.writer(scope) as writer:
            blob = writer.put_file(source, key)
        for _ in store.read(scope, blob, key):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a 32 MiB blob"


def test_scope_lock_tells_live_from_abandoned(store: LocalBlobStore, tmp_path: Path) -> None:
    scope = new_scope()
    with store.writer(scope):
        assert not store.is_abandoned(scope)
    assert store.is_abandoned(scope)
