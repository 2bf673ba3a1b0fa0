"""Who is calling, and may they: bearer tokens checked on every request, roles per route.

Authentication is on for every route but the health check; there is no switch to turn it off
(DESIGN invariant 5). Each authorised request is written to the audit log with the token's
principal as the actor, before the operation runs, so even a failed operation leaves a trace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bastion._http.problems import ForbiddenError
from bastion.errors import AuthenticationError
from bastion.store.roles import Role
from bastion.store.tokens import Identity, TokenStore
from bastion.store.workspace import Workspace

__all__ = ["Caller", "bearer", "ensure", "require"]

bearer = HTTPBearer(auto_error=False, description="An API token from 'bastion token create'.")


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: the identity, and the workspace acting as that identity."""

    identity: Identity
    """Who the token stands for."""
    workspace: Workspace
    """The server's workspace with the caller as the audit actor (shares engine and keys)."""
    request: str
    """``METHOD /path``, as audited."""


def server_workspace(request: Request) -> Workspace:
    """The workspace the app was started on."""
    workspace: Workspace = request.app.state.workspace
    return workspace


def require(role: Role) -> Callable[..., Caller]:
    """A dependency that admits callers holding ``role`` or higher.

    Checks: 1. a bearer token is present (else 401); 2. it is known, not revoked, not expired
    (else 401); 3. its role is at least ``role`` (else 403, audited as ``api.denied``);
    4. the request is audited as ``api.request`` with the caller as actor.
    """

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        workspace = server_workspace(request)
        if credentials is None or credentials.scheme.lower() != "bearer":  # 1.
            raise AuthenticationError(
                "this API needs a token", hint="send 'Authorization: Bearer TOKEN'"
            )
        identity = TokenStore(workspace).authenticate(credentials.credentials)  # 2.
        acting = dataclasses.replace(
            workspace, settings=dataclasses.replace(workspace.settings, actor=identity.principal)
        )
        caller = Caller(identity, acting, f"{request.method} {request.url.path}")
        ensure(caller, role)  # 3.
        acting.record("api.request", caller.request, token=identity.token)  # 4.
        return caller

    return dependency


def ensure(caller: Caller, role: Role) -> None:
    """Refuse (403, audited as ``api.denied``) a caller whose token's role is below ``role``."""
    identity = caller.identity
    if identity.allows(role):
        return
    caller.workspace.record(
        "api.denied",
        caller.request,
        token=identity.token,
        needed=role.value,
        held=identity.role.value,
    )
    raise ForbiddenError(
        f"the token {identity.token!r} has the role {identity.role.value}; this needs {role.value}",
        hint="ask an admin for a token with that role",
    )
