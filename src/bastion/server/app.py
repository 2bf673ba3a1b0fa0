"""The catalog as a REST API: JSON endpoints, OpenAPI at ``/openapi.json``, problem details.

Every route but ``/health`` needs a bearer token (``bastion token create``); the token's role
caps what it may do, and the catalog still checks the caller's role on each asset. Each request
is audited with the token's principal as the actor::

    app = create_app(Workspace.find())
    uvicorn.run(app, host="127.0.0.1", port=8470)
"""

from __future__ import annotations

import contextlib
import enum
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import Body, Depends, FastAPI, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from bastion import __version__
from bastion._http import problems
from bastion.catalog.bundle import BundleLimits, export_bundle, import_bundle, register_upload
from bastion.catalog.cards import CardFormat, CardKind, DisclosureLevel, card_schema
from bastion.catalog.records import Kind, Status
from bastion.catalog.service import Catalog
from bastion.errors import UsageError
from bastion.server.auth import Caller, bearer, require
from bastion.store.roles import Role
from bastion.store.workspace import Workspace

__all__ = ["create_app"]

_CARD_MEDIA: Final = {
    CardFormat.JSON: "application/json",
    CardFormat.YAML: "application/yaml",
    CardFormat.HF: "text/markdown; charset=utf-8",
    CardFormat.CYCLONEDX: "application/vnd.cyclonedx+json; version=1.6",
}
_TAR: Final = "application/x-tar"

Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Contributor = Annotated[Caller, Depends(require(Role.CONTRIBUTOR))]
Reviewer = Annotated[Caller, Depends(require(Role.REVIEWER))]
Admin = Annotated[Caller, Depends(require(Role.ADMIN))]


class ReviewDecision(enum.StrEnum):
    """What a review call does."""

    REQUEST = "request"
    APPROVE = "approve"
    REJECT = "reject"


def create_app(workspace: Workspace, *, limits: BundleLimits | None = None) -> FastAPI:
    """The API over ``workspace``; the app closes (and seals) it when it shuts down."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            workspace.close()

    app = FastAPI(
        title="Bastion catalog API",
        version=__version__,
        description=(
            "Versioned, signed, encrypted models and datasets with cards, lineage, reviews and "
            "rollback (NCSC principles 2.1, 2.4, 2.5). Authenticate with "
            "'Authorization: Bearer TOKEN' (bastion token create). Errors are RFC 9457 "
            "problem details."
        ),
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.workspace = workspace
    problems.install(app)
    bundle_limits = limits or BundleLimits()

    @app.middleware("http")
    async def no_store(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        """Liveness, without authentication; says nothing about the catalog."""
        return {"status": "ok"}

    @app.get("/v1/whoami", tags=["meta"])
    def whoami(caller: Viewer) -> dict[str, str]:
        """The principal and role of the token used, and the id of the key that signs this
        catalog (compare it with the one you were given before pinning it: BASTION_KEY_ID)."""
        identity = caller.identity
        return {
            "principal": identity.principal,
            "role": identity.role.value,
            "token": identity.token,
            "key_id": caller.workspace.signer.verifying_key.key_id,
        }

    @app.get("/v1/versions", tags=["catalog"])
    def list_versions(
        caller: Viewer,
        kind: Kind | None = None,
        q: Annotated[str | None, Query(max_length=200, description="Text to search for.")] = None,
        sensitivity: str | None = None,
        status: Status | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[dict[str, Any]]:
        """Versions matching every filter, by name then newest first (``bastion list``)."""
        found = Catalog(caller.workspace).search(
            kind=kind, text=q, sensitivity=sensitivity, status=status, limit=limit
        )
        return [v.to_dict() for v in found]

    @app.get("/v1/versions/{ref:path}", tags=["catalog"])
    def show(caller: Viewer, ref: str) -> dict[str, Any]:
        """Everything recorded about a version: NAME, NAME@N or NAME@ALIAS (``bastion show``)."""
        return Catalog(caller.workspace).show(ref).to_dict()

    @app.get("/v1/lineage/{ref:path}", tags=["catalog"])
    def lineage(caller: Viewer, ref: str) -> dict[str, Any]:
        """Upstream and downstream versions, transitively (``bastion lineage``)."""
        return Catalog(caller.workspace).lineage(ref).to_dict()

    @app.get("/v1/verify/{ref:path}", tags=["catalog"])
    def verify(caller: Viewer, ref: str, deep: bool = False) -> dict[str, Any]:
        """Re-hash blobs, check the signature and audit entries (``bastion verify``); ``deep``
        also decrypts every blob."""
        return Catalog(caller.workspace).verify(ref, deep=deep).to_dict()

    @app.get("/v1/fsck", tags=["catalog"])
    def fsck(caller: Admin) -> dict[str, Any]:
        """Cross-check database, blob store and audit chain, read-only (``bastion fsck``)."""
        return Catalog(caller.workspace).fsck().to_dict()

    @app.get("/v1/cards/{ref:path}", tags=["cards"])
    def card(
        caller: Viewer,
        ref: str,
        fmt: Annotated[CardFormat, Query(alias="format")] = CardFormat.JSON,
        level: DisclosureLevel = DisclosureLevel.INTERNAL,
    ) -> Response:
        """A version's card at a disclosure level (``bastion card export``); audited."""
        text = Catalog(caller.workspace).export_card(ref, fmt, level)
        return Response(text, media_type=_CARD_MEDIA[fmt])

    @app.get("/v1/schemas/cards/{kind}", tags=["cards"])
    def schema(caller: Viewer, kind: CardKind) -> JSONResponse:
        """The JSON Schema of a card kind (``bastion card schema``)."""
        return JSONResponse(card_schema(kind), media_type="application/schema+json")

    @app.post("/v1/reviews/{decision}/{ref:path}", tags=["reviews"])
    def review(
        caller: Annotated[Caller, Depends(_reviewing)],
        decision: ReviewDecision,
        ref: str,
        comment: Annotated[str, Body(embed=True, max_length=10_000)] = "",
        accept_risk: Annotated[str | None, Body(embed=True, max_length=10_000)] = None,
    ) -> dict[str, str]:
        """Request review (contributor), approve or reject (reviewer; never one's own version).
        Approval under a release policy needs a passing assessment or ``accept_risk``."""
        catalog = Catalog(caller.workspace)
        if decision is ReviewDecision.REQUEST:
            status = catalog.request_review(ref, comment)
        elif decision is ReviewDecision.APPROVE:
            status = catalog.approve(ref, comment, accept_risk=accept_risk)
        else:
            status = catalog.reject(ref, comment)
        return {"ref": ref, "status": status.value}

    @app.put("/v1/aliases/{alias}/{name:path}", tags=["aliases"])
    def set_alias(
        caller: Admin,
        alias: str,
        name: str,
        version: Annotated[int, Body(embed=True, ge=1)],
        accept_risk: Annotated[str | None, Body(embed=True, max_length=10_000)] = None,
    ) -> dict[str, Any]:
        """Point an alias at a version (``bastion alias set``; production is gated)."""
        Catalog(caller.workspace).set_alias(name, alias, version, accept_risk=accept_risk)
        return {"name": name, "alias": alias, "version": version}

    @app.put("/v1/grants/{principal}/{name:path}", tags=["aliases"])
    def grant(
        caller: Admin, principal: str, name: str, role: Annotated[Role, Body(embed=True)]
    ) -> dict[str, str]:
        """Give a principal a role on an asset (``bastion grant``); the catalog also requires
        the caller to be an admin of that asset."""
        Catalog(caller.workspace).grant(name, principal, role)
        return {"name": name, "principal": principal, "role": role.value}

    @app.post("/v1/rollback/{alias}/{name:path}", tags=["aliases"])
    def rollback(caller: Admin, alias: str, name: str) -> dict[str, str]:
        """Move an alias back to where it pointed before (``bastion rollback``)."""
        return {
            "name": name,
            "alias": alias,
            "ref": Catalog(caller.workspace).rollback(name, alias),
        }

    @app.get("/v1/export/{ref:path}", tags=["bundles"], response_class=FileResponse)
    def export(caller: Contributor, ref: str) -> FileResponse:
        """A signed bundle of a version (``bastion export``); the read is audited."""
        scratch = Path(tempfile.mkdtemp(prefix="export-", dir=caller.workspace.settings.home))
        try:
            result = export_bundle(caller.workspace, ref, scratch / "bundle.tar")
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        filename = result.ref.replace("/", "_").replace("@", "-") + ".tar"
        return FileResponse(
            result.path,
            media_type=_TAR,
            filename=filename,
            headers={"X-Bundle-SHA256": result.sha256, "X-Key-Id": result.key_id},
            background=BackgroundTask(shutil.rmtree, scratch, ignore_errors=True),
        )

    tar_body: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "content": {_TAR: {"schema": {"type": "string", "format": "binary"}}},
        }
    }
    upload_limit = bundle_limits.max_total_bytes + 4 * bundle_limits.max_meta_bytes

    @app.post("/v1/import", tags=["bundles"], openapi_extra=tar_body)
    async def import_(
        request: Request,
        caller: Contributor,
        key_id: Annotated[list[str] | None, Query(description="Trusted signing key ids.")] = None,
        name: str | None = None,
        accept_risk: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> dict[str, Any]:
        """Verify and register a bundle sent as the request body (``bastion import``).

        Only the server's own key and the key ids given are trusted.
        """
        async with _received(request, caller, upload_limit) as path:
            result = await run_in_threadpool(
                lambda: import_bundle(
                    caller.workspace,
                    path,
                    trusted_key_ids=key_id or (),
                    name=name,
                    accept_risk=accept_risk,
                    limits=bundle_limits,
                )
            )
        return result.to_dict()

    @app.post("/v1/{kind}s/{name:path}", tags=["catalog"], openapi_extra=tar_body)
    async def add(
        request: Request,
        caller: Contributor,
        kind: Kind,
        name: str,
        trained_on: Annotated[list[str] | None, Query()] = None,
        derived_from: str | None = None,
        evaluated_on: Annotated[list[str] | None, Query()] = None,
        accept_risk: Annotated[str | None, Query(max_length=2000)] = None,
        sensitivity: str | None = None,
    ) -> dict[str, Any]:
        """Register a new version (``bastion model add`` / ``dataset add``): the body is a tar
        of ``files/…``, optionally preceded by ``bastion-card.json``. Scanned first; findings at
        or above high are refused (422) unless ``accept_risk`` says why."""
        async with _received(request, caller, upload_limit) as path:
            info = await run_in_threadpool(
                lambda: register_upload(
                    caller.workspace,
                    kind,
                    name,
                    path,
                    trained_on=trained_on or (),
                    derived_from=derived_from,
                    evaluated_on=evaluated_on or (),
                    accept_risk=accept_risk,
                    sensitivity=sensitivity,
                    limits=bundle_limits,
                )
            )
        return info.to_dict()

    return app


def _reviewing(
    request: Request,
    decision: ReviewDecision,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller of a review route: the role it needs depends on the decision."""
    needed = Role.CONTRIBUTOR if decision is ReviewDecision.REQUEST else Role.REVIEWER
    return require(needed)(request, credentials)


@contextlib.asynccontextmanager
async def _received(request: Request, caller: Caller, limit: int) -> AsyncIterator[Path]:
    """The tar request body, streamed into a 0700 scratch directory inside the workspace
    (never more than ``limit`` bytes) and removed afterwards."""
    if request.headers.get("content-type", "").split(";")[0].strip() != _TAR:
        raise UsageError(f"send the files as {_TAR}")
    home = str(caller.workspace.settings.home)
    scratch = Path(await run_in_threadpool(tempfile.mkdtemp, "", "upload-", home))
    try:
        path = scratch / "upload.tar"
        received = 0
        with path.open("xb") as out:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise UsageError(f"the upload is larger than {limit} bytes")
                out.write(chunk)
        yield path
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
