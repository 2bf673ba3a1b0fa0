"""A user's own signing key: what ``--signing-key`` accepts and how it refuses the rest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bastion.errors import ConfigError
from bastion.store.keys import load_user_key

PKCS8 = serialization.PrivateFormat.PKCS8
PEM = serialization.Encoding.PEM


def write_key(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_an_unencrypted_pkcs8_p256_key_loads_with_its_id(tmp_path: Path) -> None:
    key = p256()
    pem = key.private_bytes(PEM, PKCS8, serialization.NoEncryption())
    path = write_key(tmp_path / "me.pem", pem)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_user_key(path).verifying_key.key_id == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    ("make", "message", "hint"),
    [
        (
            lambda: p256().private_bytes(
                PEM, PKCS8, serialization.BestAvailableEncryption(b"secret")
            ),
            "is encrypted",
            "openssl pkcs8",
        ),
        (
            lambda: p256().private_bytes(
                PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            ),
            "not an unencrypted PKCS#8",
            "-topk8 -nocrypt",
        ),
        (
            lambda: rsa.generate_private_key(65537, 2048).private_bytes(
                PEM, PKCS8, serialization.NoEncryption()
            ),
            "not an EC P-256 private key",
            "ec_paramgen_curve:P-256",
        ),
        (
            lambda: ec.generate_private_key(ec.SECP384R1()).private_bytes(
                PEM, PKCS8, serialization.NoEncryption()
            ),
            "not an EC P-256 private key",
            "ec_paramgen_curve:P-256",
        ),
        (lambda: b"-----BEGIN PRIVATE KEY-----\nnot base64\n", "cannot load", "openssl genpkey"),
    ],
    ids=["encrypted", "sec1", "rsa", "p384", "garbage"],
)
def test_other_keys_are_refused_with_a_fix(
    tmp_path: Path, make: object, message: str, hint: str
) -> None:
    path = write_key(tmp_path / "key.pem", make())  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message) as caught:
        load_user_key(path)
    assert hint in (caught.value.hint or "")


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    pem = p256().private_bytes(PEM, PKCS8, serialization.NoEncryption())
    path = write_key(tmp_path / "me.pem", pem, mode=0o640)
    with pytest.raises(ConfigError, match="readable by other users") as caught:
        load_user_key(path)
    assert caught.value.hint == f"run 'chmod 600 {path}'"


def test_a_missing_key_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_user_key(tmp_path / "nope.pem")
    assert "openssl genpkey" in (caught.value.hint or "")
