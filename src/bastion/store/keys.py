"""The workspace's keys: an EC P-256 signing key and the key-encryption key (KEK).

One P-256 key signs audit checkpoints and artifact manifests: it is the key type OpenSSF
model-signing verifies offline, so a recipient outside Bastion can check our signatures. The KEK
wraps per-version data keys (:func:`wrap_key`; ``docs/catalog.md``). Both are files of mode
0600, written once and never overwritten.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Self

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion._fs import create_exclusive
from bastion.errors import ConfigError, IntegrityError

__all__ = [
    "KEK_BYTES",
    "SigningKey",
    "VerifyingKey",
    "create_kek",
    "create_signing_key",
    "load_kek",
    "load_user_key",
    "new_data_key",
    "unwrap_key",
    "wrap_key",
]

KEK_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A P-256 public key and its id (SHA-256 of the DER SubjectPublicKeyInfo)."""

    public_key: ec.EllipticCurvePublicKey

    @property
    def key_id(self) -> str:
        """Stable identifier recorded beside every signature."""
        der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()

    def pem(self) -> bytes:
        """The public key as PEM, for distribution to verifiers."""
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`IntegrityError` unless ``signature`` is ours over ``message``."""
        try:
            self.public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise IntegrityError("signature does not verify with the workspace key") from None

    @classmethod
    def from_pem(cls, data: bytes) -> Self:
        """Load a PEM public key, which must be EC P-256."""
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise ConfigError("the public key is not an EC P-256 key")
        return cls(key)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A P-256 private key that signs with ECDSA-SHA256."""

    private_key: ec.EllipticCurvePrivateKey

    @property
    def verifying_key(self) -> VerifyingKey:
        """The matching public half."""
        return VerifyingKey(self.private_key.public_key())

    def sign(self, message: bytes) -> bytes:
        """DER-encoded ECDSA-SHA256 signature over ``message``."""
        return self.private_key.sign(message, ec.ECDSA(hashes.SHA256()))

    @classmethod
    def from_file(cls, path: Path) -> Self:
        """Load the key, refusing one that others can read."""
        _check_private(path)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(
                f"cannot load the signing key {path}", hint="restore it from your backup"
            ) from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ConfigError(
                f"{path} is not an EC P-256 private key (the type OpenSSF model-signing "
                "verifies offline)"
            )
        return cls(key)


_NEW_KEY_HINT: Final = (
    "make one with 'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
    "-out my-key.pem && chmod 600 my-key.pem'"
)


def load_user_key(path: Path) -> SigningKey:
    """Load a user's own signing key: an unencrypted PKCS#8 PEM EC P-256 key, mode 0600.

    Stricter than the workspace key (the form OpenSSF ``model_signing sign key`` reads without a
    password); every refusal says how to fix the file. The key is only read, never copied.
    """
    try:
        head = path.read_bytes()[:64]
    except FileNotFoundError:
        raise ConfigError(f"signing key {path} does not exist", hint=_NEW_KEY_HINT) from None
    except OSError as exc:
        raise ConfigError(f"cannot read signing key {path}: {exc.strerror}") from None
    if head.lstrip().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"):
        raise ConfigError(
            f"signing key {path} is encrypted; Bastion signs without prompting for a password",
            hint=f"write a decrypted copy (mode 0600): 'openssl pkcs8 -in {path} -out KEY.pem' "
            "and keep it on an encrypted disk",
        )
    if not head.lstrip().startswith(b"-----BEGIN PRIVATE KEY-----"):
        raise ConfigError(
            f"signing key {path} is not an unencrypted PKCS#8 PEM private key",
            hint=f"convert it: 'openssl pkcs8 -topk8 -nocrypt -in {path} -out KEY.pem', or "
            + _NEW_KEY_HINT,
        )
    try:
        return SigningKey.from_file(path)
    except ConfigError as exc:
        hint = exc.hint if "readable by other users" in exc.message else _NEW_KEY_HINT
        raise ConfigError(exc.message, hint=hint) from None


def create_signing_key(path: Path) -> SigningKey:
    """Generate a P-256 key into ``path`` (0600) and its public half beside it."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    create_exclusive(path, pem, mode=0o600)
    signing = SigningKey(key)
    create_exclusive(path.with_suffix(".pub.pem"), signing.verifying_key.pem(), mode=0o644)
    return signing


def create_kek(path: Path) -> None:
    """Write a fresh random 256-bit key-encryption key to ``path`` (0600)."""
    create_exclusive(path, os.urandom(KEK_BYTES), mode=0o600)


def load_kek(path: Path) -> bytes:
    """Read the KEK, refusing a file others can read or of the wrong length."""
    _check_private(path)
    data = path.read_bytes()
    if len(data) != KEK_BYTES:
        raise IntegrityError(
            f"{path} holds {len(data)} bytes, not a {KEK_BYTES}-byte key",
            hint="restore the key-encryption key from your backup",
        )
    return data


def _check_private(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(
            f"key file {path} is missing", hint="restore it, or set BASTION_KEK_FILE"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"key file {path} is readable by other users (mode {stat.S_IMODE(mode):o})",
            hint=f"run 'chmod 600 {path}'",
        )


_WRAP_DOMAIN: Final = b"bastion-data-key/v1\n"
_NONCE: Final = 12


def new_data_key() -> bytes:
    """A fresh random AES-256 key for one version."""
    return AESGCM.generate_key(bit_length=256)


def wrap_key(kek: bytes, data_key: bytes, scope: str) -> str:
    """Encrypt ``data_key`` under the KEK, bound to ``scope`` (a wrapped key moved to another
    version's row does not unwrap there)."""
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(kek).encrypt(nonce, data_key, _WRAP_DOMAIN + scope.encode())
    return base64.b64encode(nonce + sealed).decode("ascii")


def unwrap_key(kek: bytes, wrapped: str, scope: str) -> bytes:
    """Inverse of :func:`wrap_key`; :class:`IntegrityError` when it was altered or moved."""
    try:
        raw = base64.b64decode(wrapped, validate=True)
        return AESGCM(kek).decrypt(raw[:_NONCE], raw[_NONCE:], _WRAP_DOMAIN + scope.encode())
    except (ValueError, InvalidTag):
        raise IntegrityError(
            "the version's wrapped data key does not unwrap with the workspace KEK",
            hint="the key row was altered or moved, or BASTION_KEK_FILE is the wrong key",
        ) from None
