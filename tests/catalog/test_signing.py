"""Manifests and OpenSSF model-signing bundles, checked by model_signing itself."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import model_signing
import pytest

from bastion.catalog.signing import FileEntry, Manifest, sign_manifest, verify_bundle
from bastion.errors import IntegrityError, UsageError
from bastion.store.keys import SigningKey, create_signing_key


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "signing.pem"
    path.parent.mkdir()
    create_signing_key(path)
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"layers": 2}')
    (root / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 100)
    return root


def manifest_of(root: Path) -> Manifest:
    return Manifest.of(
        FileEntry(p.relative_to(root).as_posix(), p.stat().st_size,
                  hashlib.sha256(p.read_bytes()).hexdigest())
        for p in root.rglob("*") if p.is_file()
    )


def test_manifest_digest_covers_paths_sizes_and_digests() -> None:
    a = Manifest.of([FileEntry("a", 1, "0" * 64), FileEntry("b", 2, "1" * 64)])
    assert a == Manifest.of([FileEntry("b", 2, "1" * 64), FileEntry("a", 1, "0" * 64)])
    renamed = Manifest.of([FileEntry("a", 1, "0" * 64), FileEntry("c", 2, "1" * 64)])
    resized = Manifest.of([FileEntry("a", 9, "0" * 64), FileEntry("b", 2, "1" * 64)])
    assert a.digest not in {renamed.digest, resized.digest}


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../b", "", "a//b"])
def test_unclean_paths_are_refused(path: str) -> None:
    with pytest.raises(UsageError):
        FileEntry(path, 1, "0" * 64)


def test_duplicate_paths_are_refused() -> None:
    with pytest.raises(UsageError, match="twice"):
        Manifest.of([FileEntry("a", 1, "0" * 64), FileEntry("a", 1, "0" * 64)])


def test_round_trip(key_file: Path, model_dir: Path) -> None:
    manifest = manifest_of(model_dir)
    bundle = sign_manifest(manifest, "model", key_file)
    key = SigningKey.from_file(key_file).verifying_key
    assert verify_bundle(bundle, key) == {
        "config.json": hashlib.sha256(b'{"layers": 2}').hexdigest(),
        "sub/weights.bin": hashlib.sha256(bytes(range(256)) * 100).hexdigest(),
    }


def test_model_signing_python_api_verifies_our_bundle(
    key_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    signature = tmp_path / "model.sig"
    signature.write_text(sign_manifest(manifest_of(model_dir), "model", key_file))
    config = model_signing.verifying.Config().use_elliptic_key_verifier(
        public_key=key_file.with_suffix(".pub.pem")
    )
    config.verify(model_dir, signature)  # raises on mismatch
    (model_dir / "sub" / "weights.bin").write_bytes(b"poisoned")
    with pytest.raises(ValueError, match=r"Hash mismatch for .*sub/weights.bin"):
        model_signing.verifying.Config().use_elliptic_key_verifier(
            public_key=key_file.with_suffix(".pub.pem")
        ).verify(model_dir, signature)


def test_model_signing_cli_verifies_our_bundle(
    key_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    signature = tmp_path / "model.sig"
    signature.write_text(sign_manifest(manifest_of(model_dir), "model", key_file))
    command = [sys.executable, "-m", "model_signing", "verify", "key", str(model_dir),
               "--signature", str(signature), "--public_key", str(key_file.with_suffix(".pub.pem"))]
    ok = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    (model_dir / "extra.txt").write_text("added after signing")
    bad = subprocess.run(command, capture_output=True, text=True, check=False)
    assert bad.returncode != 0
    assert "extra.txt" in bad.stdout + bad.stderr


def test_bundle_signed_by_model_signing_verifies_in_bastion(
    key_file: Path, model_dir: Path, tmp_path: Path
) -> None:
    signature = tmp_path / "theirs.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=key_file).sign(
        model_dir, signature
    )
    key = SigningKey.from_file(key_file).verifying_key
    assert verify_bundle(signature.read_text(), key) == manifest_of(model_dir).digests


def test_other_key_is_refused(key_file: Path, model_dir: Path, tmp_path: Path) -> None:
    bundle = sign_manifest(manifest_of(model_dir), "model", key_file)
    other = create_signing_key(tmp_path / "other.pem").verifying_key
    with pytest.raises(IntegrityError, match="another key"):
        verify_bundle(bundle, other)


def test_edited_payload_is_refused(key_file: Path, model_dir: Path) -> None:
    bundle = json.loads(sign_manifest(manifest_of(model_dir), "model", key_file))
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    key = SigningKey.from_file(key_file).verifying_key
    with pytest.raises(IntegrityError, match="signature does not verify"):
        verify_bundle(json.dumps(bundle), key)


def test_malformed_bundle_is_refused(key_file: Path) -> None:
    key = SigningKey.from_file(key_file).verifying_key
    with pytest.raises(IntegrityError, match="malformed"):
        verify_bundle('{"mediaType": 1}', key)
