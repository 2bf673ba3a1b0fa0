"""Errors as RFC 9457 problem details, never as stack traces.

Each :class:`~bastion.errors.BastionError` becomes ``application/problem+json`` with the
status its class implies; anything unexpected becomes a bare 500 whose body says only that,
so no path, query or library detail leaks to a caller (NCSC 3.1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from bastion.errors import (
    AccessDeniedError,
    AuthenticationError,
    BastionError,
    IntegrityError,
    NotFoundError,
    StorageError,
    UsageError,
)

__all__ = ["PROBLEM_TYPE", "ForbiddenError", "install", "problem"]

PROBLEM_TYPE: Final = "urn:bastion:problem:"
_log = logging.getLogger("bastion.server")


class ForbiddenError(BastionError):
    """The caller is known but their role does not allow this (HTTP 403)."""


# Most specific first: the first class an error is an instance of decides its status.
_STATUS: Final[tuple[tuple[type[BaseException], HTTPStatus, str], ...]] = (
    (AuthenticationError, HTTPStatus.UNAUTHORIZED, "unauthenticated"),
    (ForbiddenError, HTTPStatus.FORBIDDEN, "forbidden"),
    (AccessDeniedError, HTTPStatus.FORBIDDEN, "forbidden"),
    (NotFoundError, HTTPStatus.NOT_FOUND, "not-found"),
    (IntegrityError, HTTPStatus.UNPROCESSABLE_ENTITY, "integrity"),
    (UsageError, HTTPStatus.BAD_REQUEST, "bad-request"),
    (StorageError, HTTPStatus.SERVICE_UNAVAILABLE, "storage"),
)


def problem(
    status: HTTPStatus,
    slug: str,
    detail: str,
    *,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An RFC 9457 response: ``type``, ``title``, ``status``, ``detail``, ``instance``."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + slug,
        "title": status.phrase,
        "status": int(status),
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return JSONResponse(
        body, status_code=int(status), media_type="application/problem+json", headers=headers
    )


def _for_bastion_error(exc: BastionError) -> tuple[HTTPStatus, str]:
    for cls, status, slug in _STATUS:
        if isinstance(exc, cls):
            return status, slug
    if exc.exit_code == 1:  # a refused gate (findings at or above the threshold)
        return HTTPStatus.UNPROCESSABLE_ENTITY, "refused"
    return HTTPStatus.INTERNAL_SERVER_ERROR, "server-error"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    @app.exception_handler(BastionError)
    async def _bastion(request: Request, exc: BastionError) -> JSONResponse:
        status, slug = _for_bastion_error(exc)
        if status is HTTPStatus.INTERNAL_SERVER_ERROR:
            _log.error("request %s failed: %s", request.url.path, exc.message)
            return problem(
                status, slug, "the server could not complete the request", instance=request.url.path
            )
        extra: dict[str, Any] = {"hint": exc.hint} if exc.hint else {}
        if exc.param:
            extra["param"] = exc.param  # the argument at fault, in the API's own name
        findings = getattr(exc, "findings", None)
        if findings:
            extra["findings"] = [f.to_dict() for f in findings]
        headers = (
            {"WWW-Authenticate": 'Bearer realm="bastion"'}
            if status is HTTPStatus.UNAUTHORIZED
            else None
        )
        return problem(
            status, slug, exc.message, instance=request.url.path, extra=extra, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        return problem(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "invalid-request",
            "the request does not match the API",
            instance=request.url.path,
            extra={"errors": errors},
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        status = HTTPStatus(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else status.description
        return problem(
            status,
            status.phrase.lower().replace(" ", "-"),
            detail,
            instance=request.url.path,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unexpected error on %s", request.url.path)
        return problem(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "server-error",
            "the server could not complete the request",
            instance=request.url.path,
        )
