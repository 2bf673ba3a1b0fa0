"""Content-addressed, encrypted blob store (NCSC 2.4: assets protected at rest).

Key hierarchy (``docs/catalog.md``)::

    KEK (workspace, 0600 file / BASTION_KEK_FILE)
     └─ wraps one data key per version (AES-256-GCM, bound to the version's scope id)
         └─ encrypts every blob of that version, chunk by chunk (AES-256-GCM)

Blobs live at ``ROOT/<scope>/<sha256[:2]>/<sha256>``: addressed by the SHA-256 of their plaintext
inside the scope of one version. Destroying a version's wrapped data key makes every blob in its
scope unreadable (crypto-shredding) and touches no other version; the same content in two versions
is therefore stored twice, once under each key.

A blob file is a header then a run of chunk records::

    header  = b"BSTNBLOB" | u8 format (1) | u32 chunk size | 16-byte blob id
    record  = 12-byte random nonce | AES-GCM(chunk) (plaintext + 16-byte tag)
    AAD     = b"bastion-blob/v1" | header | u64 chunk index | u8 final flag

Every record but the last holds exactly ``chunk size`` bytes; the last is shorter (possibly empty)
and is the only one sealed with the final flag, so truncation at a chunk boundary, a dropped or
reordered chunk, a chunk moved from another blob and a flipped bit are all detected::

    store = LocalBlobStore(Path(".bastion/blobs"))
    key = new_data_key()
    with store.writer(scope) as w:
        stored = w.put_file(Path("model.pt"), key)
    for chunk in store.read(scope, stored, key): ...
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import re
import secrets
import shutil
import struct
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Protocol, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion._fs import fsync_dir
from bastion.errors import IntegrityError, StorageError

__all__ = [
    "CHUNK_SIZE",
    "BlobStore",
    "BlobWriter",
    "LocalBlobStore",
    "StoredBlob",
    "new_scope",
]

CHUNK_SIZE: Final = 4 * 1024 * 1024
_MAGIC: Final = b"BSTNBLOB"
_FORMAT: Final = 1
_HEADER: Final = struct.Struct(">8sBI16s")
_NONCE: Final = 12
_TAG: Final = 16
_AAD_DOMAIN: Final = b"bastion-blob/v1"
_LOCK: Final = ".lock"
_SCOPE_RE: Final = re.compile(r"^[0-9a-f]{32}$")
_SHA_RE: Final = re.compile(r"^[0-9a-f]{64}$")


def new_scope() -> str:
    """A fresh random scope id: names one version's blob directory and binds its wrapped key."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A blob written to the store."""

    sha256: str
    """SHA-256 of the plaintext: the blob's address inside its scope."""
    size: int
    """Plaintext size in bytes."""
    blob_id: str
    """Random id written in the blob's header and bound into every chunk's AAD."""
    sealed_sha256: str
    """SHA-256 of the stored (encrypted) file: checking it needs no key."""


class BlobWriter(Protocol):
    """Writes the blobs of one version while holding that scope's lock."""

    def put_file(self, path: Path, key: bytes) -> StoredBlob:
        """Encrypt ``path`` into the scope, hashing it on the way; return what was stored."""
        ...


class BlobStore(Protocol):
    """Where encrypted blobs live. Local directory now; S3-compatible storage later."""

    def writer(self, scope: str) -> contextlib.AbstractContextManager[BlobWriter]:
        """Open ``scope`` for writing; a crashed writer's scope is an orphan until fsck."""
        ...

    def read(self, scope: str, blob: StoredBlob, key: bytes) -> Iterator[bytes]:
        """Yield the plaintext, verifying every chunk and finally the SHA-256."""
        ...

    def check_sealed(self, scope: str, blob: StoredBlob) -> None:
        """Re-hash the stored (encrypted) bytes against the digest recorded at write time."""
        ...

    def scopes(self) -> list[str]:
        """Every scope present in the store."""
        ...

    def blobs(self, scope: str) -> list[str]:
        """The SHA-256 addresses present in ``scope``."""
        ...

    def is_abandoned(self, scope: str) -> bool:
        """True when no writer holds ``scope`` (a crashed or finished writer)."""
        ...

    def delete_scope(self, scope: str) -> None:
        """Remove a scope and everything in it."""
        ...

    def delete_blob(self, scope: str, sha256: str) -> None:
        """Remove one blob (an orphan inside a live scope)."""
        ...

    def has_temporaries(self, scope: str) -> bool:
        """Whether half-written blobs left by a crash lie inside ``scope``."""
        ...

    def delete_temporaries(self, scope: str) -> None:
        """Remove half-written blobs in a scope no writer holds."""
        ...


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return _AAD_DOMAIN + header + struct.pack(">QB", index, 1 if final else 0)


class _LocalWriter:
    """Writes blobs into one scope directory; see :meth:`LocalBlobStore.writer`."""

    def __init__(self, directory: Path, chunk_size: int) -> None:
        self._dir = directory
        self._chunk = chunk_size

    def put_file(self, path: Path, key: bytes) -> StoredBlob:
        """Encrypt ``path`` to a temporary file, fsync it, then rename it to its address."""
        aead = AESGCM(key)
        blob_id = secrets.token_bytes(16)
        header = _HEADER.pack(_MAGIC, _FORMAT, self._chunk, blob_id)
        digest, sealed = hashlib.sha256(), hashlib.sha256(header)
        size = 0
        temp = self._dir / f"tmp-{secrets.token_hex(8)}"
        try:
            with path.open("rb") as src, temp.open("xb") as out:
                out.write(header)
                index = 0
                buffer = bytearray(self._chunk)
                view = memoryview(buffer)
                while True:
                    filled = _read_full(src, view)
                    chunk = view[:filled]
                    digest.update(chunk)
                    size += filled
                    final = filled < self._chunk
                    nonce = os.urandom(_NONCE)
                    record = aead.encrypt(nonce, chunk, _aad(header, index, final))
                    sealed.update(nonce)
                    sealed.update(record)
                    out.write(nonce)
                    out.write(record)
                    index += 1
                    if final:
                        break
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            target = self._dir / sha[:2] / sha
            target.parent.mkdir(exist_ok=True)
            if target.exists():  # the same content twice in one version: keep the first copy
                temp.unlink()
                first_id = _read_header(target)[3].hex()
                return StoredBlob(sha, size, first_id, _file_sha256(target))
            os.replace(temp, target)
            fsync_dir(target.parent)
            fsync_dir(self._dir)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise StorageError(
                f"cannot store {path}: {exc.strerror or exc}",
                hint="check free space and permissions of the blob directory",
            ) from exc
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        return StoredBlob(sha, size, blob_id.hex(), sealed.hexdigest())


def _read_full(src: BinaryIO, view: memoryview) -> int:
    filled = 0
    while filled < len(view):
        n = src.readinto(view[filled:])  # type: ignore[attr-defined]
        if not n:
            break
        filled += n
    return filled


def _file_sha256(path: Path) -> str:
    # Hashing a read-only mapping copies nothing into Python and releases the GIL for the whole
    # file, so several files hash in parallel at full speed.
    with path.open("rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return hashlib.sha256().hexdigest()
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return hashlib.sha256(mapped).hexdigest()


def _read_header(path: Path) -> tuple[bytes, int, int, bytes]:
    with path.open("rb") as handle:
        return _HEADER.unpack(handle.read(_HEADER.size))


class LocalBlobStore:
    """Blobs in a local directory (``BASTION_BLOB_URL``, default ``.bastion/blobs``)."""

    def __init__(self, root: Path, *, chunk_size: int = CHUNK_SIZE, threads: int = 2) -> None:
        self.root = root
        self._chunk = chunk_size
        self._threads = threads

    @classmethod
    def from_url(cls, url: str) -> Self:
        """A store for ``file:///path`` or a plain path."""
        path = url.removeprefix("file://")
        if "://" in path:
            raise StorageError(
                f"unsupported blob store URL {url!r}",
                hint="use a local directory path or file:///PATH",
            )
        return cls(Path(path))

    def _scope_dir(self, scope: str) -> Path:
        if not _SCOPE_RE.match(scope):
            raise IntegrityError(f"malformed blob scope id {scope!r}")
        return self.root / scope

    def _blob_path(self, scope: str, sha256: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise IntegrityError(f"malformed blob address {sha256!r}")
        return self._scope_dir(scope) / sha256[:2] / sha256

    @contextlib.contextmanager
    def writer(self, scope: str) -> Iterator[_LocalWriter]:
        """Create the scope and hold its lock while blobs are written into it.

        The lock (``flock`` on ``<scope>/.lock``) dies with the process: fsck takes a scope whose
        lock it can acquire and that no version row names for an orphan of a crashed ``add``.
        """
        directory = self._scope_dir(scope)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            directory.mkdir(mode=0o700)
            fsync_dir(self.root)
            lock = os.open(directory / _LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise StorageError(
                f"cannot create blob scope in {self.root}: {exc.strerror or exc}",
                hint="check that the blob directory exists and is writable",
            ) from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield _LocalWriter(directory, self._chunk)
        finally:
            os.close(lock)

    def read(self, scope: str, blob: StoredBlob, key: bytes) -> Iterator[bytes]:
        """Yield verified plaintext chunks of ``blob``.

        Checks, in order: 1. the header names this blob's id; 2. every chunk authenticates
        under the version key with its index and final flag; 3. nothing follows the final chunk
        and nothing is missing before it; 4. the plaintext's SHA-256 and size are the recorded
        ones. Chunks are decrypted ahead on a thread pool while earlier ones are hashed.
        """
        path = self._blob_path(scope, blob.sha256)
        where = f"blob {blob.sha256[:12]}… of scope {scope[:12]}…"
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise IntegrityError(f"{where} is missing from the blob store") from None
        with handle, ThreadPoolExecutor(self._threads) as pool:
            raw_header = handle.read(_HEADER.size)
            try:
                magic, fmt, chunk_size, blob_id = _HEADER.unpack(raw_header)
            except struct.error:
                raise IntegrityError(f"{where} has no valid header (truncated?)") from None
            if magic != _MAGIC or fmt != _FORMAT or not 0 < chunk_size <= 256 * 1024 * 1024:
                raise IntegrityError(f"{where} has a damaged header")
            if blob_id.hex() != blob.blob_id:  # 1.
                raise IntegrityError(f"{where} is not the blob recorded there (blob id differs)")
            aead = AESGCM(key)
            record = _NONCE + chunk_size + _TAG

            def open_chunk(data: bytes, i: int) -> tuple[bytes, bool]:
                final = len(data) < record
                try:  # 2.
                    plain = aead.decrypt(data[:_NONCE], data[_NONCE:], _aad(raw_header, i, final))
                except (InvalidTag, ValueError):
                    raise IntegrityError(
                        f"{where}: chunk {i} fails authentication "
                        "(modified, reordered, truncated or from another blob)"
                    ) from None
                return plain, final

            digest, size, index = hashlib.sha256(), 0, 0
            pending: deque[Future[tuple[bytes, bool]]] = deque()
            exhausted = final = False
            while not final:
                while not exhausted and len(pending) <= self._threads:
                    data = handle.read(record)
                    exhausted = len(data) < record
                    if data:
                        pending.append(pool.submit(open_chunk, data, index))
                        index += 1
                if not pending:
                    break
                plain, final = pending.popleft().result()
                digest.update(plain)
                size += len(plain)
                yield plain
            if not final:  # 3.
                raise IntegrityError(f"{where} is truncated: its final chunk is missing")
            if digest.hexdigest() != blob.sha256 or size != blob.size:  # 4.
                raise IntegrityError(f"{where} decrypts to content with another digest or size")

    def check_sealed(self, scope: str, blob: StoredBlob) -> None:
        """Re-hash the stored bytes against ``blob.sealed_sha256``: no key needed.

        Encryption is deterministic given the stored nonces, so unchanged ciphertext decrypts to
        the plaintext whose digest was computed when it was written.
        """
        path = self._blob_path(scope, blob.sha256)
        try:
            actual = _file_sha256(path)
        except FileNotFoundError:
            raise IntegrityError(
                f"blob {blob.sha256[:12]}… of scope {scope[:12]}… is missing from the blob store"
            ) from None
        if actual != blob.sealed_sha256:
            raise IntegrityError(
                f"blob {blob.sha256[:12]}… of scope {scope[:12]}… was changed at rest: its stored "
                "bytes no longer hash to the digest recorded when it was written"
            )

    def scopes(self) -> list[str]:
        """Scope directories present under the root."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if _SCOPE_RE.match(p.name))

    def blobs(self, scope: str) -> list[str]:
        """Blob addresses present in ``scope`` (temporary files excluded)."""
        directory = self._scope_dir(scope)
        return sorted(p.name for p in directory.glob("??/*") if _SHA_RE.match(p.name))

    def _temporaries(self, scope: str) -> list[Path]:
        return sorted(self._scope_dir(scope).glob("tmp-*"))

    def has_temporaries(self, scope: str) -> bool:
        """Whether half-written blobs left by a crash lie inside ``scope``."""
        return bool(self._temporaries(scope))

    def is_abandoned(self, scope: str) -> bool:
        """Whether no live writer holds the scope's lock."""
        try:
            lock = os.open(self._scope_dir(scope) / _LOCK, os.O_RDWR)
        except FileNotFoundError:
            return True  # killed between mkdir and creating the lock file
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(lock)
        return True

    def delete_scope(self, scope: str) -> None:
        """Remove the scope directory (after its key was shredded, or as an orphan)."""
        directory = self._scope_dir(scope)
        shutil.rmtree(directory, ignore_errors=True)
        if self.root.is_dir():
            fsync_dir(self.root)

    def delete_blob(self, scope: str, sha256: str) -> None:
        """Remove one blob file."""
        with contextlib.suppress(FileNotFoundError):
            self._blob_path(scope, sha256).unlink()

    def delete_temporaries(self, scope: str) -> None:
        """Remove half-written blobs in a scope no writer holds."""
        for temp in self._temporaries(scope):
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()

