"""A client of ``bastion server``: the :class:`~bastion.catalog.api.CatalogAPI` over HTTP,
returning the same records as the local catalog, so commands print the same output remotely.

Configured from the environment only (a token never appears on a command line)::

    BASTION_URL=https://catalog.example.org BASTION_TOKEN=bst_… bastion list
    catalog = RemoteCatalog.from_env()      # None when BASTION_URL is not set

``get`` verifies what it downloads against a signing key id pinned in ``BASTION_KEY_ID``
(printed by ``bastion export`` and ``GET /v1/whoami``): the server is not trusted to vouch for
its own key.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import httpx2

from bastion.catalog.api import Card, Registering
from bastion.catalog.bundle import UPLOAD_CARD, UPLOAD_DERIVATION, unpack_bundle
from bastion.catalog.cards import CardFormat, DisclosureLevel, card_from_dict
from bastion.catalog.records import (
    FsckReport,
    Kind,
    LineageNode,
    LineageReport,
    Problem,
    ReadRefusedError,
    RefusedError,
    RegistrationRefusedError,
    Status,
    Verification,
    VersionInfo,
    VersionSummary,
)
from bastion.catalog.signing import Manifest
from bastion.errors import (
    AccessDeniedError,
    AuthenticationError,
    BastionError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    StorageError,
    UsageError,
)
from bastion.findings import Finding
from bastion.store.roles import Role

__all__ = ["RemoteCatalog"]

_TIMEOUT: Final = httpx2.Timeout(30.0, read=600.0)
_ERRORS: Final[dict[str, type[BastionError]]] = {
    "unauthenticated": AuthenticationError,
    "forbidden": AccessDeniedError,
    "not-found": NotFoundError,
    "bad-request": UsageError,
    "invalid-request": UsageError,
    "integrity": IntegrityError,
    "storage": StorageError,
}


class RemoteCatalog(Registering):
    """The catalog behind a ``bastion server``, over HTTP."""

    def __init__(self, client: httpx2.Client, *, key_ids: Iterable[str] = ()) -> None:
        self._http = client
        self._key_ids = [k for k in key_ids if k]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RemoteCatalog | None:
        """A client for ``BASTION_URL`` with ``BASTION_TOKEN``, or ``None`` without a URL."""
        env = os.environ if env is None else env
        url = env.get("BASTION_URL", "").strip()
        if not url:
            return None
        token = env.get("BASTION_TOKEN", "").strip()
        if not token:
            raise ConfigError(
                "BASTION_URL is set but BASTION_TOKEN is not",
                hint="export BASTION_TOKEN=… (from 'bastion token create' on the server)",
            )
        if not url.startswith("https://") and not url.startswith(
            ("http://127.0.0.1", "http://localhost", "http://[::1]")
        ):
            raise ConfigError(
                f"refusing to send a token over plain HTTP to {url}",
                hint="use https://, or http:// only to localhost",
            )
        client = httpx2.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=_TIMEOUT
        )
        return cls(client, key_ids=env.get("BASTION_KEY_ID", "").split(","))

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    # -- reading ----------------------------------------------------------------------------

    def search(
        self,
        *,
        kind: Kind | None = None,
        text: str | None = None,
        sensitivity: str | None = None,
        status: Status | None = None,
        limit: int = 100,
    ) -> list[VersionSummary]:
        """``GET /v1/versions``."""
        params = {
            "kind": kind,
            "q": text,
            "sensitivity": sensitivity,
            "status": status,
            "limit": limit,
        }
        rows = self._json(
            "GET", "/v1/versions", params={k: str(v) for k, v in params.items() if v is not None}
        )
        return [_summary(row) for row in rows]

    def show(self, ref: str) -> VersionInfo:
        """``GET /v1/versions/REF``."""
        return _info(self._json("GET", f"/v1/versions/{ref}"))

    def lineage(self, ref: str) -> LineageReport:
        """``GET /v1/lineage/REF``."""
        data = self._json("GET", f"/v1/lineage/{ref}")
        return LineageReport(
            data["ref"],
            [_node(n) for n in data["upstream"]],
            [_node(n) for n in data["downstream"]],
        )

    def verify(self, ref: str, *, deep: bool = False) -> Verification:
        """``GET /v1/verify/REF``."""
        data = self._json("GET", f"/v1/verify/{ref}", params={"deep": str(deep).lower()})
        return Verification(
            data["ref"],
            data["digest"],
            int(data["files"]),
            int(data["bytes"]),
            tuple(_problem(p) for p in data["problems"]),
        )

    def fsck(self, *, clean: bool = False) -> FsckReport:
        """``GET /v1/fsck`` (read-only: cleaning runs on the server's host)."""
        if clean:
            raise UsageError(
                "fsck --clean runs only on the server's host",
                hint="unset BASTION_URL there and run it locally",
            )
        data = self._json("GET", "/v1/fsck")
        return FsckReport(
            int(data["versions"]),
            int(data["scopes"]),
            tuple(_problem(p) for p in data["problems"]),
            tuple(_problem(p) for p in data["orphans"]),
            int(data["cleaned"]),
        )

    def get(self, ref: str, dest: Path, *, signature: Path | None = None) -> Manifest:
        """Download a version's bundle and unpack it into ``dest`` after verifying both
        signatures and every digest against the pinned ``BASTION_KEY_ID``."""
        if not self._key_ids:
            raise ConfigError(
                "fetching files from a server needs the server's signing key id",
                hint="export BASTION_KEY_ID=… (printed by 'bastion export' on the server)",
            )
        dest = dest.absolute()
        scratch = Path(tempfile.mkdtemp(prefix=".bastion-get-", dir=dest.parent))
        try:
            bundle = scratch / "bundle.tar"
            with self._http.stream("GET", f"/v1/export/{ref}") as response:
                if response.status_code != 200:
                    response.read()
                    self._raise(response, refusal=ReadRefusedError)
                with bundle.open("xb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            manifest = unpack_bundle(bundle, dest, trusted_key_ids=self._key_ids)
            if signature is not None:
                with tarfile.open(bundle) as tar:
                    member = tar.extractfile("signature.sigstore.json")
                    if member is not None:
                        signature.write_bytes(member.read())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return manifest

    # -- writing ----------------------------------------------------------------------------

    def add(
        self,
        kind: Kind,
        name: str,
        path: Path,
        *,
        card: Card = None,
        trained_on: Iterable[str] = (),
        derived_from: str | None = None,
        evaluated_on: Iterable[str] = (),
        accept_risk: str | None = None,
        sensitivity: str | None = None,
        signing_key: Path | None = None,
        derivation: Mapping[str, Any] | None = None,
    ) -> VersionInfo:
        """``POST /v1/models/NAME`` or ``/v1/datasets/NAME`` with the files as a tar."""
        if signing_key is not None:  # a private key never travels; the server signs
            raise UsageError(
                "signing with your own key works only on a local workspace: a server signs "
                "uploads with its own key, and your private key is never sent anywhere",
                hint="unset BASTION_URL to register into a local workspace with your key; "
                "versions added through a server are signed with the server's key",
                param="signing_key",
            )
        params: list[tuple[str, str]] = [("trained_on", r) for r in trained_on]
        params += [("evaluated_on", r) for r in evaluated_on]
        for key, value in (
            ("derived_from", derived_from),
            ("accept_risk", accept_risk),
            ("sensitivity", sensitivity),
        ):
            if value is not None:
                params.append((key, value))
        scratch = Path(tempfile.mkdtemp(prefix="bastion-upload-"))
        try:
            upload = scratch / "upload.tar"
            _pack(path, card, derivation, upload)
            with upload.open("rb") as body:
                data = self._json(
                    "POST",
                    f"/v1/{kind.value}s/{name}",
                    params=params,
                    content=body,
                    headers={"Content-Type": "application/x-tar"},
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return _info(data)

    def export_card(self, ref: str, fmt: CardFormat, level: DisclosureLevel) -> str:
        """``GET /v1/cards/REF`` (the server audits the disclosure)."""
        response = self._request(
            "GET", f"/v1/cards/{ref}", params={"format": fmt.value, "level": level.value}
        )
        return response.text

    def request_review(self, ref: str, comment: str = "") -> Status:
        """``POST /v1/reviews/request/REF``."""
        return self._review("request", ref, comment)

    def approve(self, ref: str, comment: str = "", *, accept_risk: str | None = None) -> Status:
        """``POST /v1/reviews/approve/REF``."""
        return self._review("approve", ref, comment, accept_risk)

    def reject(self, ref: str, comment: str = "") -> Status:
        """``POST /v1/reviews/reject/REF``."""
        return self._review("reject", ref, comment)

    def set_alias(self, name: str, alias: str, version: int, *,
                  accept_risk: str | None = None) -> None:
        """``PUT /v1/aliases/ALIAS/NAME``."""
        body: dict[str, Any] = {"version": version}
        if accept_risk is not None:
            body["accept_risk"] = accept_risk
        self._json("PUT", f"/v1/aliases/{alias}/{name}", json=body)

    def rollback(self, name: str, alias: str = "production") -> str:
        """``POST /v1/rollback/ALIAS/NAME``; the version the alias points at now."""
        return str(self._json("POST", f"/v1/rollback/{alias}/{name}")["ref"])

    def grant(self, name: str, principal: str, role: Role) -> None:
        """``PUT /v1/grants/PRINCIPAL/NAME``."""
        self._json("PUT", f"/v1/grants/{principal}/{name}", json={"role": role.value})

    # -- internals --------------------------------------------------------------------------

    def _review(self, decision: str, ref: str, comment: str,
                accept_risk: str | None = None) -> Status:
        body: dict[str, Any] = {"comment": comment}
        if accept_risk is not None:
            body["accept_risk"] = accept_risk
        data = self._json("POST", f"/v1/reviews/{decision}/{ref}", json=body)
        return Status(data["status"])

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx2.TransportError as exc:
            raise StorageError(
                f"cannot reach the Bastion server: {exc.__class__.__name__}",
                hint="check BASTION_URL and that 'bastion server' is running",
            ) from None
        if response.status_code >= 400:
            self._raise(response)
        return response

    @staticmethod
    def _raise(
        response: httpx2.Response, *, refusal: type[RefusedError] = RegistrationRefusedError
    ) -> None:
        """The problem document as the error the local catalog would raise; a refusal is
        the gate of the call that met it (registration, or a read)."""
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        slug = str(problem.get("type", "")).rpartition(":")[2]
        detail = str(problem.get("detail") or f"the server answered {response.status_code}")
        hint = problem.get("hint")
        param = str(problem["param"]) if problem.get("param") else None
        if slug == "refused":
            findings = [Finding.from_dict(f) for f in problem.get("findings") or ()]
            raise refusal(detail, findings, hint=str(hint or ""), param=param)
        raise _ERRORS.get(slug, StorageError)(
            detail, hint=str(hint) if hint else None, param=param
        )


def _pack(path: Path, card: Card, derivation: Mapping[str, Any] | None, out: Path) -> None:
    """The upload tar: ``bastion-card.json`` and ``bastion-derivation.json`` (when given), then
    the files under ``files/``."""
    if path.is_symlink() or not path.exists():
        raise UsageError(f"{path} does not exist or is a symbolic link")
    files = (
        [(path.name, path)]
        if path.is_file()
        else sorted((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if not p.is_dir())
    )
    with tarfile.open(out, "x:", format=tarfile.PAX_FORMAT) as tar:
        if card is not None:
            data = (
                card
                if isinstance(card, Mapping)
                else card.model_dump(mode="json", exclude_none=True)
            )
            _add_json(tar, UPLOAD_CARD, dict(data))
        if derivation is not None:
            _add_json(tar, UPLOAD_DERIVATION, dict(derivation))
        for rel, file in files:
            if file.is_symlink() or not file.is_file():
                raise UsageError(
                    f"{file} is not a regular file",
                    hint="replace links and special files with the files",
                )
            info = tarfile.TarInfo(f"files/{rel}")
            info.size = file.stat().st_size
            with file.open("rb") as handle:
                tar.addfile(info, handle)


def _add_json(tar: tarfile.TarFile, name: str, data: Mapping[str, Any]) -> None:
    text = json.dumps(data).encode()
    info = tarfile.TarInfo(name)
    info.size = len(text)
    tar.addfile(info, io.BytesIO(text))


def _summary(d: Mapping[str, Any]) -> VersionSummary:
    return VersionSummary(
        name=d["name"],
        kind=Kind(d["kind"]),
        version=int(d["version"]),
        status=Status(d["status"]),
        sensitivity=d["sensitivity"],
        digest=d["digest"],
        author=d["author"],
        created_at=d["created_at"],
        files=int(d["files"]),
        size=int(d["size"]),
    )


def _info(d: Mapping[str, Any]) -> VersionInfo:
    card = d["card"]
    card_from_dict(card, source="card from the server", trusted=True)  # refuse a malformed one
    return VersionInfo(
        summary=_summary(d),
        owner=d["owner"],
        card=card,
        manifest=list(d["manifest"]),
        findings=[Finding.from_dict(f) for f in d["findings"]],
        accepted_risk=d.get("accepted_risk"),
        lineage=[(e["relation"], e["ref"]) for e in d["lineage"]],
        aliases=list(d["aliases"]),
        reviews=list(d["reviews"]),
        key_id=d["key_id"],
        collaborators=dict(d["collaborators"]),
        public_key=str(d.get("public_key") or ""),
        assessments=list(d.get("assessments") or ()),
    )


def _node(d: Mapping[str, Any]) -> LineageNode:
    return LineageNode(
        d["ref"], Kind(d["kind"]), Status(d["status"]), d["relation"], d["via"], int(d["depth"])
    )


def _problem(d: Mapping[str, Any]) -> Problem:
    return Problem(d["kind"], d["subject"], d["message"])
