"""File manifests and OpenSSF model-signing bundles over them (NCSC 2.5; invariant 3).

A version's identity is its :class:`Manifest`: every file's relative path, size and SHA-256. Bastion
signs it as an OpenSSF model-signing v1.0 statement (in-toto, DSSE, Sigstore bundle v0.3) with an
EC P-256 key, so a recipient without Bastion checks the files it received with::

    model_signing verify key DIR --signature SIG.json --public_key signing.pub.pem

Signing reuses the digests computed while storing the blobs, so nothing is hashed twice::

    manifest = Manifest.of([FileEntry("weights.bin", 42, "ab…")])
    bundle = sign_manifest(manifest, "digits", key_file)
    assert verify_bundle(bundle, verifying_key) == manifest.digests
"""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, Self

from cryptography.hazmat.primitives import serialization

from bastion.errors import IntegrityError, UsageError
from bastion.store.keys import VerifyingKey

__all__ = ["FileEntry", "Manifest", "sign_manifest", "verify_bundle"]

_BUNDLE_MEDIA_TYPE: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
_PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
# The serialization model_signing records for per-file SHA-256 hashing without symlinks; a
# recipient's verifier re-hashes the directory in exactly this mode.
_SERIALIZATION: Final = {"method": "files", "hash_type": "sha256", "allow_symlinks": False}


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a version."""

    path: str
    """Relative POSIX path inside the asset (a single-file asset holds its file name)."""
    size: int
    """Size in bytes."""
    sha256: str
    """SHA-256 of the content, lower-case hex."""

    def __post_init__(self) -> None:
        pure = PurePosixPath(self.path)
        if pure.is_absolute() or ".." in pure.parts or not self.path or str(pure) != self.path:
            raise UsageError(f"manifest path {self.path!r} is not a clean relative path")


@dataclass(frozen=True, slots=True)
class Manifest:
    """Every file of a version, sorted by path; its digest is the version's identity."""

    files: tuple[FileEntry, ...]
    """The files, sorted by path, without duplicates."""

    @classmethod
    def of(cls, entries: Iterable[FileEntry]) -> Self:
        """Build a manifest, refusing two entries for one path."""
        ordered = tuple(sorted(entries, key=lambda e: e.path))
        paths = [e.path for e in ordered]
        if len(set(paths)) != len(paths):
            raise UsageError("a manifest lists the same path twice")
        return cls(ordered)

    @property
    def digest(self) -> str:
        """SHA-256 over the canonical JSON of the entries (paths, sizes and digests)."""
        text = json.dumps(
            [[e.path, e.size, e.sha256] for e in self.files], separators=(",", ":")
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def digests(self) -> dict[str, str]:
        """Path → SHA-256, the part an OpenSSF signature covers."""
        return {e.path: e.sha256 for e in self.files}

    @property
    def total_size(self) -> int:
        """Bytes in all files."""
        return sum(e.size for e in self.files)


def sign_manifest(manifest: Manifest, name: str, private_key_file: Path) -> str:
    """Sign ``manifest`` as an OpenSSF model-signing bundle (JSON text) with an EC key file
    (the workspace key, or a user's own key checked by :func:`~bastion.store.keys.load_user_key`).
    """
    # model_signing's own building blocks, so the bundle is byte-for-byte what its CLI makes.
    from model_signing import manifest as ms_manifest
    from model_signing._hashing.hashing import Digest
    from model_signing._signing import sign_ec_key
    from model_signing._signing.signing import Payload

    serialization_type = ms_manifest.SerializationType.from_args(dict(_SERIALIZATION))
    items = [
        ms_manifest.FileManifestItem(
            path=pathlib.PurePosixPath(e.path), digest=Digest("sha256", bytes.fromhex(e.sha256))
        )
        for e in manifest.files
    ]
    payload = Payload(ms_manifest.Manifest(name, items, serialization_type))
    signature = sign_ec_key.Signer(private_key_file).sign(payload)
    return str(signature.bundle.to_json())  # type: ignore[attr-defined]


def verify_bundle(bundle: str, key: VerifyingKey) -> dict[str, str]:
    """Check ``bundle`` against ``key``; return the signed path → SHA-256 map.

    Checks: 1. the bundle is a Sigstore v0.3 bundle with a DSSE envelope of an in-toto
    payload; 2. the key hint names ``key``; 3. the ECDSA signature over the DSSE PAE verifies;
    4. the statement is a model-signing v1.0 statement whose root digest matches its resources
    (model_signing's own parser does this check).
    """
    from model_signing._signing.signing import dsse_payload_to_manifest

    try:
        document = json.loads(bundle)
        envelope = document["dsseEnvelope"]
        payload = base64.b64decode(envelope["payload"])
        signature = base64.b64decode(envelope["signatures"][0]["sig"])
        payload_type = envelope["payloadType"]
        hint = document["verificationMaterial"]["publicKey"].get("hint")
        media_type = document["mediaType"]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise IntegrityError("the signature bundle is malformed") from None
    if media_type != _BUNDLE_MEDIA_TYPE or payload_type != _PAYLOAD_TYPE:  # 1.
        raise IntegrityError(f"unexpected signature bundle type {media_type} / {payload_type}")
    pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if hint and hint != hashlib.sha256(pem).hexdigest():  # 2.
        raise IntegrityError(
            f"the signature was made with another key than key {key.key_id[:16]}…"
        )
    pae = b"DSSEv1 %d %s %d %s" % (
        len(_PAYLOAD_TYPE), _PAYLOAD_TYPE.encode(), len(payload), payload
    )
    try:
        key.verify(signature, pae)  # 3.
    except IntegrityError:
        raise IntegrityError(
            f"the signature does not verify with key {key.key_id[:16]}…"
        ) from None
    try:
        statement: Mapping[str, Any] = json.loads(payload)
        signed = dsse_payload_to_manifest(dict(statement))  # 4.
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"the signed statement is not a model-signing manifest: {exc}"
        ) from None
    return {str(rd.identifier): rd.digest.digest_hex for rd in signed.resource_descriptors()}
