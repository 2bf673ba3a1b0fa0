"""Signed bundles: one version carried to another workspace, across an air gap.

A bundle is a plain tar file, written in this order::

    bastion-bundle.json      the index: asset, manifest, card, findings, lineage, key ids
    bastion-bundle.sig       ECDSA P-256 signature over the index (card, findings, lineage)
    public-key.pem           the exporting workspace's public key
    signature.sigstore.json  the OpenSSF model-signing bundle made when the version was added
    signer-key.pem           the public key that made it: the workspace's, or a user's
    files/…                  the version's files, as registered

The recipient decides which keys it trusts (its own, ``--key FILE`` or ``--key-id``); a bundle
is never trusted because it carries a key. The trusted key is the exporting workspace's: it
signs the index, and the index names the key id of ``signer-key.pem``, so a version signed with
a user's key imports with the same trust and no extra flag. (Format 1 bundles lack
``signer-key.pem``: their files were signed with the workspace key.) Import verifies both
signatures and every digest while extracting, then registers the files through
:class:`~bastion.catalog.service.Catalog`, which scans them again with ``bastion.scan.scan``
and refuses findings at or above high::

    export_bundle(workspace, "digits@2", Path("digits-2.tar"))
    result = import_bundle(other_workspace, Path("digits-2.tar"), trusted_keys=[key])

Outside Bastion, ``tar xf digits-2.tar`` then
``model_signing verify key files --signature signature.sigstore.json --public_key signer-key.pem``
checks the files with OpenSSF's own tool.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final, cast

from bastion._fs import fsync_dir
from bastion._time import utc_stamp
from bastion.catalog.cards import COMPUTED_FIELDS, CardKind, load_card_text
from bastion.catalog.records import Kind, VersionInfo
from bastion.catalog.service import Catalog
from bastion.catalog.signing import FileEntry, Manifest, verify_bundle
from bastion.config import read_config
from bastion.errors import BastionError, ConfigError, IntegrityError, NotFoundError, UsageError
from bastion.store.audit import canonical_json
from bastion.store.keys import VerifyingKey
from bastion.store.workspace import Workspace

__all__ = [
    "BundleError",
    "BundleLimits",
    "ExportResult",
    "ImportResult",
    "export_bundle",
    "import_bundle",
    "UPLOAD_CARD",
    "UPLOAD_DERIVATION",
    "register_upload",
    "unpack_bundle",
]

FORMAT: Final = "bastion-bundle"
FORMAT_VERSION: Final = 2
_READABLE_VERSIONS: Final = (1, FORMAT_VERSION)  # 1: no signer-key.pem (workspace-signed)
INDEX: Final = "bastion-bundle.json"
INDEX_SIG: Final = "bastion-bundle.sig"
PUBLIC_KEY: Final = "public-key.pem"
SIGSTORE: Final = "signature.sigstore.json"
SIGNER_KEY: Final = "signer-key.pem"
UPLOAD_CARD: Final = "bastion-card.json"
UPLOAD_DERIVATION: Final = "bastion-derivation.json"
FILES: Final = "files/"
_META_ORDER: Final = (INDEX, INDEX_SIG, PUBLIC_KEY, SIGSTORE, SIGNER_KEY)
_META_REQUIRED: Final = _META_ORDER[:4]
_DOMAIN: Final = b"bastion-bundle/v1\n"
# Computed by Bastion; the importing catalog computes its own (cards refuse them from users).
_LINEAGE_FIELDS: Final = ("training_datasets", "evaluation_datasets", "parent_model")
_CHUNK: Final = 1 << 20


class BundleError(IntegrityError):
    """A bundle is malformed, unsafe, untrusted or does not match its signatures."""


@dataclass(frozen=True, slots=True)
class BundleLimits:
    """Bounds on what an import reads, so a hostile bundle cannot exhaust disk or memory."""

    max_members: int = 100_000
    """Most tar members."""
    max_meta_bytes: int = 64 * 1024**2
    """Largest index, signature or key member (they are read into memory)."""
    max_total_bytes: int = 1024**4
    """Most file bytes extracted in all."""


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What ``bastion export`` wrote."""

    ref: str
    """The version exported."""
    path: Path
    """The bundle."""
    digest: str
    """The version's manifest digest."""
    sha256: str
    """SHA-256 of the bundle file itself, to compare after transfer."""
    key_id: str
    """The signing key's id, to pin on the other side (``--key-id``)."""
    files: int
    """Files carried."""
    size: int
    """Bytes of file content carried."""
    signer_key_id: str = ""
    """The id of the key that signed the files (``signer-key.pem``): the workspace key's or
    the user's who registered the version with ``--signing-key``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "path": str(self.path),
            "digest": self.digest,
            "sha256": self.sha256,
            "key_id": self.key_id,
            "signer_key_id": self.signer_key_id,
            "files": self.files,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What ``bastion import`` registered."""

    source: str
    """The version as it was named where it was exported."""
    version: VersionInfo
    """The new version here (its digest equals the source's)."""
    key_id: str
    """The key the bundle was verified with."""
    lineage: Sequence[tuple[str, str]] = field(default_factory=tuple)
    """Lineage kept: (relation, NAME@VERSION here)."""
    unresolved: Sequence[tuple[str, str]] = field(default_factory=tuple)
    """Lineage dropped because that exact content is not in this catalog."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "ref": self.version.summary.ref,
            "digest": self.version.summary.digest,
            "status": self.version.summary.status.value,
            "key_id": self.key_id,
            "lineage": [{"relation": r, "ref": ref} for r, ref in self.lineage],
            "unresolved_lineage": [{"relation": r, "ref": ref} for r, ref in self.unresolved],
            "findings": [f.to_dict() for f in self.version.findings],
        }




# -- export ----------------------------------------------------------------------------------


def export_bundle(
    workspace: Workspace, ref: str, out: Path, *, catalog: Catalog | None = None
) -> ExportResult:
    """Write version ``ref`` to the new file ``out`` as a signed bundle.

    The files are read with :meth:`Catalog.get` (so the read is checked and audited, and
    destroyed or unaccepted-risk versions are refused); the tar appears whole or not at all.
    """
    catalog = catalog or Catalog(workspace)
    out = out.absolute()
    if out.exists():
        raise UsageError(
            f"{out} already exists", hint="choose a new file name; nothing is overwritten"
        )
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent} is not a directory", hint="create it first")
    info = catalog.show(ref)
    with _private_dir(workspace) as work:
        signature_file = work / SIGSTORE
        manifest = catalog.get(info.summary.ref, work / "files", signature=signature_file)
        index = _index(workspace, catalog, info, manifest)
        index_text = canonical_json(index).encode("utf-8")
        signature = base64.b64encode(workspace.signer.sign(_DOMAIN + index_text))
        meta = {
            INDEX: index_text,
            INDEX_SIG: signature + b"\n",
            PUBLIC_KEY: workspace.signer.verifying_key.pem(),
            SIGSTORE: signature_file.read_bytes(),
            SIGNER_KEY: info.public_key.encode("ascii"),
        }
        digest = _write_tar(out, meta, work / "files", manifest)
    key_id = workspace.signer.verifying_key.key_id
    workspace.record(
        "bundle.export",
        info.summary.ref,
        digest=info.summary.digest,
        bundle_sha256=digest,
        path=str(out),
        key_id=key_id,
        signer_key_id=info.key_id,
    )
    return ExportResult(
        info.summary.ref,
        out,
        info.summary.digest,
        digest,
        key_id,
        len(manifest.files),
        manifest.total_size,
        info.key_id,
    )


def _index(
    workspace: Workspace, catalog: Catalog, info: VersionInfo, manifest: Manifest
) -> dict[str, Any]:
    summary = info.summary
    lineage = [
        {"relation": relation, "ref": parent, "digest": catalog.show(parent).summary.digest}
        for relation, parent in info.lineage
    ]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "asset": {
            "name": summary.name,
            "kind": summary.kind.value,
            "version": summary.version,
            "sensitivity": summary.sensitivity,
            "status": summary.status.value,
            "digest": summary.digest,
        },
        "manifest": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in manifest.files],
        "card": dict(info.card),
        "findings": [f.to_dict() for f in info.findings],
        "accepted_risk": info.accepted_risk,
        "lineage": lineage,
        "key_id": workspace.signer.verifying_key.key_id,
        "signer_key_id": info.key_id,
        "exported_by": workspace.settings.actor,
        "exported_at": utc_stamp(),
        "source_workspace": read_config(workspace.settings.home).get("workspace_id"),
    }


def _write_tar(out: Path, meta: Mapping[str, bytes], files: Path, manifest: Manifest) -> str:
    temp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with temp.open("xb") as raw:
            hashing = _HashingWriter(raw, digest)
            with tarfile.open(
                fileobj=cast(IO[bytes], hashing), mode="w:", format=tarfile.PAX_FORMAT
            ) as tar:
                for name in _META_ORDER:
                    _add_bytes(tar, name, meta[name])
                for entry in manifest.files:
                    source = files / entry.path
                    member = tarfile.TarInfo(FILES + entry.path)
                    member.size, member.mode, member.mtime = entry.size, 0o644, 0
                    with source.open("rb") as handle:
                        tar.addfile(member, handle)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, out)
        fsync_dir(out.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size, member.mode, member.mtime = len(data), 0o644, 0
    tar.addfile(member, io.BytesIO(data))


class _HashingWriter:
    """A write-only file object that hashes what passes through (the bundle's SHA-256)."""

    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        self._raw, self._digest = raw, digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._raw.write(data)

    def tell(self) -> int:
        return self._raw.tell()


# -- import ----------------------------------------------------------------------------------


def import_bundle(
    workspace: Workspace,
    bundle: Path,
    *,
    trusted_keys: Iterable[VerifyingKey] = (),
    trusted_key_ids: Iterable[str] = (),
    name: str | None = None,
    accept_risk: str | None = None,
    catalog: Catalog | None = None,
    limits: BundleLimits | None = None,
) -> ImportResult:
    """Verify ``bundle`` and register its version here.

    Checks, in order (any failure refuses the whole bundle; nothing is registered):

    1. the file is a plain tar whose members are regular files with clean relative names,
       metadata first, within :class:`BundleLimits` (no links, devices, ``..`` or absolute
       paths: CVE-2007-4559 and its kin);
    2. the index is a bundle index of a format version this Bastion reads;
    3. the bundled public key is one the importer trusts: the workspace's own key, a key
       given with ``trusted_keys``, or a key id pinned with ``trusted_key_ids``;
    4. the index signature verifies (card, findings and lineage are as exported);
    5. the OpenSSF model-signing bundle verifies with the signer key the signed index names
       (the exporter's, or the user's key the version was registered with) and signs exactly
       the manifest in the index;
    6. every file's size and SHA-256 match the manifest as it is extracted, and no file is
       missing or extra;
    7. the catalog registers the files, which scans them again (``bastion.scan.scan``) and
       refuses findings at or above high unless ``accept_risk`` gives a reason;
    8. the registered digest is the exported one.
    """
    catalog = catalog or Catalog(workspace)
    trusted = {workspace.signer.verifying_key.key_id, *(k.key_id for k in trusted_keys)}
    trusted |= {k.strip().lower() for k in trusted_key_ids}
    with _private_dir(workspace) as work:
        files = work / "files"
        files.mkdir(mode=0o700)
        index, manifest, key = _verified_extract(bundle, files, trusted, limits or BundleLimits())
        return _register(
            workspace, catalog, bundle, index, manifest, key, files, name, accept_risk
        )  # 7. 8.


def unpack_bundle(
    bundle: Path,
    dest: Path,
    *,
    trusted_key_ids: Iterable[str],
    limits: BundleLimits | None = None,
) -> Manifest:
    """Verify ``bundle`` (steps 1–6 of :func:`import_bundle`) and write its files to the new
    directory ``dest``, which appears whole or not at all. No catalog is involved: this is how
    a client of ``bastion server`` fetches a version."""
    trusted = {k.strip().lower() for k in trusted_key_ids}
    dest = dest.absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists", hint="choose a new or empty directory")
    temp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.bastion-", dir=dest.parent))
    try:
        _, manifest, _ = _verified_extract(bundle, temp, trusted, limits or BundleLimits())
        if dest.exists():
            dest.rmdir()
        os.replace(temp, dest)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return manifest


def _verified_extract(
    bundle: Path, dest: Path, trusted: set[str], limits: BundleLimits
) -> tuple[dict[str, Any], Manifest, VerifyingKey]:
    if not bundle.is_file():
        raise UsageError(
            f"{bundle} is not a file", hint="give the path of a bundle from 'bastion export'"
        )
    with _open_tar(bundle) as tar:
        meta, members = _read_meta(tar, limits)  # 1.
        index = _parse_index(meta[INDEX])  # 2.
        key = _trusted_key(meta[PUBLIC_KEY], index, trusted)  # 3.
        _verify_index(key, meta[INDEX], meta[INDEX_SIG])  # 4.
        manifest = _manifest(index)
        signer = _signer_key(meta, index, key)
        signed = verify_bundle(meta[SIGSTORE].decode("utf-8", "replace"), signer)  # 5.
        if signed != manifest.digests:
            raise BundleError(
                f"{bundle}: the OpenSSF signature does not sign the files the index lists",
                hint="the bundle was altered after export; get a fresh copy",
            )
        _check_against(members, manifest, bundle)  # 6.
        written = _extract(tar, members, dest, limits)
    for path, sha256 in manifest.digests.items():
        if written[path] != sha256:
            raise BundleError(
                f"{bundle}: file {path} does not match its signed SHA-256: it was modified",
                hint="get a fresh copy of the bundle from its exporter",
            )
    return index, manifest, key


def register_upload(
    workspace: Workspace,
    kind: Kind,
    name: str,
    upload: Path,
    *,
    trained_on: Iterable[str] = (),
    derived_from: str | None = None,
    evaluated_on: Iterable[str] = (),
    accept_risk: str | None = None,
    sensitivity: str | None = None,
    catalog: Catalog | None = None,
    limits: BundleLimits | None = None,
) -> VersionInfo:
    """Register files sent as a tar: ``files/…``, optionally preceded by ``bastion-card.json``.

    How ``bastion server`` accepts new versions. The tar gets the same safe reading as a bundle
    (step 1 of :func:`import_bundle`); then the catalog scans, hashes, encrypts, signs and
    records the files exactly as for a local ``add``.
    """
    catalog = catalog or Catalog(workspace)
    limits = limits or BundleLimits()
    with _private_dir(workspace) as work:
        files = work / "files"
        files.mkdir(mode=0o700)
        with _open_tar(upload) as tar:
            meta, members = _read_meta(tar, limits, (UPLOAD_CARD, UPLOAD_DERIVATION), ())
            if not members:
                raise UsageError("the upload holds no files", hint="put them under files/")
            _extract(tar, members, files, limits)
        card = None
        if UPLOAD_CARD in meta:
            card = load_card_text(
                _utf8(meta[UPLOAD_CARD]), source=UPLOAD_CARD, kind=CardKind(kind.value)
            )
        derivation = None
        if UPLOAD_DERIVATION in meta:
            try:
                derivation = json.loads(_utf8(meta[UPLOAD_DERIVATION]))
            except ValueError:
                raise UsageError(f"{UPLOAD_DERIVATION} is not JSON") from None
            if not isinstance(derivation, dict):
                raise UsageError(f"{UPLOAD_DERIVATION} must hold a JSON object")
        return catalog.add(
            kind,
            name,
            files,
            card=card,
            trained_on=trained_on,
            derived_from=derived_from,
            evaluated_on=evaluated_on,
            accept_risk=accept_risk,
            sensitivity=sensitivity,
            derivation=derivation,
        )


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("an upload's metadata must be UTF-8 text") from None


@contextlib.contextmanager
def _open_tar(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, mode="r:") as tar:
            yield tar
    except tarfile.ReadError as exc:
        raise BundleError(
            f"{path} is not a bundle: {exc}",
            hint="bundles are plain tar files from 'bastion export'",
        ) from None
    except (EOFError, tarfile.TarError) as exc:
        raise BundleError(f"{path} is truncated or damaged: {exc}") from None


def _read_meta(
    tar: tarfile.TarFile,
    limits: BundleLimits,
    names: Sequence[str] = _META_ORDER,
    required: Sequence[str] = _META_REQUIRED,
) -> tuple[dict[str, bytes], list[tarfile.TarInfo]]:
    """Walk every header once: check each member, read the metadata ``names`` (which come
    first, in order; the ``required`` ones must be there), list the ``files/`` members."""
    meta: dict[str, bytes] = {}
    members: list[tarfile.TarInfo] = []
    seen: set[str] = set()
    last = -1
    for count, member in enumerate(tar, start=1):
        if count > limits.max_members:
            raise BundleError(f"the bundle has more than {limits.max_members} members")
        name = member.name
        if not (member.type in (tarfile.REGTYPE, tarfile.AREGTYPE) and not member.issparse()):
            raise BundleError(
                f"bundle member {name!r} is not a regular file (links, directories and devices "
                "are refused)"
            )
        if name in seen:
            raise BundleError(f"bundle member {name!r} appears twice")
        seen.add(name)
        if name in names:  # in the order of ``names``; a missing required one is caught below
            if members or names.index(name) <= last:
                raise BundleError(f"bundle member {name!r} is out of order: not a Bastion bundle")
            last = names.index(name)
            if member.size > limits.max_meta_bytes:
                raise BundleError(
                    f"bundle member {name!r} is larger than {limits.max_meta_bytes} bytes"
                )
            handle = tar.extractfile(member)
            if handle is None:  # pragma: no cover - regular files always have a stream
                raise BundleError(f"cannot read bundle member {name!r}")
            meta[name] = handle.read()
        elif name.startswith(FILES) and all(n in meta for n in required):
            _clean_relative(name[len(FILES) :])
            members.append(member)
        else:
            raise BundleError(f"unexpected bundle member {name!r}")
    missing = [n for n in required if n not in meta]
    if missing:
        raise BundleError(f"the bundle lacks {', '.join(missing)}: not a complete Bastion bundle")
    return meta, members


def _clean_relative(path: str) -> None:
    pure = PurePosixPath(path)
    if (
        not path
        or pure.is_absolute()
        or ".." in pure.parts
        or str(pure) != path
        or "\\" in path
        or "\x00" in path
    ):
        raise BundleError(f"bundle member path {path!r} is not a clean relative path")


def _parse_index(data: bytes) -> dict[str, Any]:
    try:
        index = json.loads(data)
    except ValueError:
        raise BundleError(f"{INDEX} is not JSON") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise BundleError(f"{INDEX} is not a Bastion bundle index")
    if index.get("format_version") not in _READABLE_VERSIONS:
        raise BundleError(
            f"bundle format version {index.get('format_version')!r} is not supported "
            f"(this Bastion reads {FORMAT_VERSION})",
            hint="import it with the Bastion release that exported it, or upgrade",
        )
    needed: tuple[str, ...] = ("asset", "manifest", "card", "lineage", "key_id")
    if index["format_version"] >= 2:
        needed += ("signer_key_id",)
    for key in needed:
        if key not in index:
            raise BundleError(f"{INDEX} lacks {key!r}")
    return index


def _signer_key(
    meta: Mapping[str, bytes], index: Mapping[str, Any], exporter: VerifyingKey
) -> VerifyingKey:
    """The key that signed the files: the one the (verified) index names, carried as
    ``signer-key.pem``; the exporter's own in format 1 bundles."""
    if "signer_key_id" not in index:
        if SIGNER_KEY in meta:
            raise BundleError(f"a format 1 bundle cannot carry {SIGNER_KEY}")
        return exporter
    if SIGNER_KEY not in meta:
        raise BundleError(f"the bundle lacks {SIGNER_KEY}: not a complete Bastion bundle")
    try:
        signer = VerifyingKey.from_pem(meta[SIGNER_KEY])
    except (ValueError, ConfigError):
        raise BundleError(f"{SIGNER_KEY} is not an EC P-256 public key") from None
    if signer.key_id != index["signer_key_id"]:
        raise BundleError(
            f"{SIGNER_KEY} is not the key the signed index names as the files' signer",
            hint="the bundle was altered after export; get a fresh copy",
        )
    return signer


def _trusted_key(pem: bytes, index: Mapping[str, Any], trusted: set[str]) -> VerifyingKey:
    try:
        key = VerifyingKey.from_pem(pem)
    except (ValueError, ConfigError):
        raise BundleError(f"{PUBLIC_KEY} is not an EC P-256 public key") from None
    if key.key_id != index["key_id"]:
        raise BundleError("the bundled public key is not the key the index names")
    if key.key_id not in trusted:
        raise BundleError(
            f"the bundle is signed by key {key.key_id}, which this workspace does not trust",
            hint="get the exporter's public key by another channel and trust it, or pin its id",
            param="key_id",
        )
    return key


def _verify_index(key: VerifyingKey, index: bytes, signature: bytes) -> None:
    try:
        key.verify(base64.b64decode(signature.strip(), validate=True), _DOMAIN + index)
    except (ValueError, IntegrityError):
        raise BundleError(
            f"the signature over {INDEX} does not verify: the card, findings or lineage were "
            "changed after export",
            hint="get a fresh copy of the bundle from its exporter",
        ) from None


def _manifest(index: Mapping[str, Any]) -> Manifest:
    try:
        entries = [
            FileEntry(str(e["path"]), int(e["size"]), str(e["sha256"])) for e in index["manifest"]
        ]
        manifest = Manifest.of(entries)
    except (KeyError, TypeError, ValueError, UsageError) as exc:
        raise BundleError(f"the manifest in {INDEX} is malformed: {exc}") from None
    if manifest.digest != index["asset"].get("digest"):
        raise BundleError("the manifest does not hash to the digest the index records")
    return manifest


def _check_against(members: Sequence[tarfile.TarInfo], manifest: Manifest, bundle: Path) -> None:
    """Names and sizes must be the signed ones before a byte is written."""
    expected = {e.path: e for e in manifest.files}
    names = [m.name[len(FILES) :] for m in members]
    extra = sorted(set(names) - set(expected))
    missing = sorted(set(expected) - set(names))
    if extra or missing:
        raise BundleError(
            f"{bundle}: the files do not match the signed manifest"
            + (f"; not in the manifest: {', '.join(extra)}" if extra else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    for member, rel in zip(members, names, strict=True):
        if member.size != expected[rel].size:
            raise BundleError(
                f"{bundle}: file {rel} has {member.size} bytes but the signed manifest says "
                f"{expected[rel].size}: it was modified"
            )


def _extract(
    tar: tarfile.TarFile, members: Sequence[tarfile.TarInfo], dest: Path, limits: BundleLimits
) -> dict[str, str]:
    """Write the ``files/`` members under ``dest`` (0600 files, 0700 directories); return
    path → SHA-256 of what was written."""
    if sum(m.size for m in members) > limits.max_total_bytes:
        raise BundleError(f"the bundle holds more than {limits.max_total_bytes} bytes of files")
    digests: dict[str, str] = {}
    for member in members:
        rel = member.name[len(FILES) :]
        target = dest.joinpath(*PurePosixPath(rel).parts)
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - regular files always have a stream
            raise BundleError(f"cannot read bundle member {member.name!r}")
        digest = hashlib.sha256()
        try:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with target.open("xb") as out:
                os.fchmod(out.fileno(), 0o600)
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except (FileExistsError, NotADirectoryError):
            raise BundleError(f"bundle member {member.name!r} clashes with another path") from None
        except OSError as exc:
            raise BundleError(f"cannot extract {member.name!r}: {exc.strerror}") from exc
        digests[rel] = digest.hexdigest()
    return digests


def _register(
    workspace: Workspace,
    catalog: Catalog,
    bundle: Path,
    index: Mapping[str, Any],
    manifest: Manifest,
    key: VerifyingKey,
    files: Path,
    name: str | None,
    accept_risk: str | None,
) -> ImportResult:
    asset = index["asset"]
    source = f"{asset['name']}@{asset['version']}"
    kind = Kind(asset["kind"])
    kept, unresolved = _local_lineage(catalog, index["lineage"])
    card = {
        k: v
        for k, v in dict(index["card"]).items()
        if k not in COMPUTED_FIELDS and k not in _LINEAGE_FIELDS and k != "name"
    }
    relations: dict[str, list[str]] = {}
    for relation, ref in kept:
        relations.setdefault(relation, []).append(ref)
    target = name or str(asset["name"])
    parent = relations["derived_from"][0] if relations.get("derived_from") else None
    info = catalog.add(
        kind,
        target,
        files,
        card=card,
        trained_on=relations.get("trained_on", ()),
        derived_from=parent,
        evaluated_on=relations.get("evaluated_on", ()),
        accept_risk=accept_risk,
        sensitivity=str(asset.get("sensitivity") or "") or None,
    )
    if info.summary.digest != manifest.digest:  # 8.
        raise BundleError(  # pragma: no cover - the manifest was checked file by file
            f"{info.summary.ref} registered with digest {info.summary.digest}, not the "
            f"exported {manifest.digest}"
        )
    workspace.record(
        "bundle.import",
        info.summary.ref,
        source=source,
        digest=manifest.digest,
        key_id=key.key_id,
        signer_key_id=index.get("signer_key_id", key.key_id),
        bundle=str(bundle),
        source_workspace=index.get("source_workspace"),
        exported_by=index.get("exported_by"),
        source_findings=len(index.get("findings") or ()),
        unresolved_lineage=[f"{r}:{ref}" for r, ref in unresolved],
    )
    return ImportResult(source, info, key.key_id, tuple(kept), tuple(unresolved))


def _local_lineage(
    catalog: Catalog, lineage: Iterable[Mapping[str, Any]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Keep an edge only where this catalog holds the same content (same digest)."""
    kept: list[tuple[str, str]] = []
    unresolved: list[tuple[str, str]] = []
    for edge in lineage:
        relation, ref, digest = str(edge["relation"]), str(edge["ref"]), edge.get("digest")
        name = ref.partition("@")[0]
        local = None
        with contextlib.suppress(NotFoundError, UsageError):
            local = next(
                (
                    s.ref
                    for s in catalog.search(text=name, limit=10_000)
                    if s.name == name and s.digest == digest
                ),
                None,
            )
        (kept if local else unresolved).append((relation, local or ref))
    return kept, unresolved


@contextlib.contextmanager
def _private_dir(workspace: Workspace) -> Iterator[Path]:
    """A 0700 scratch directory inside the workspace: plaintext never lands in a shared /tmp."""
    try:
        path = Path(tempfile.mkdtemp(prefix="bundle-", dir=workspace.settings.home))
    except OSError as exc:
        raise BastionError(
            f"cannot make a scratch directory in {workspace.settings.home}: {exc.strerror}"
        ) from exc
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
