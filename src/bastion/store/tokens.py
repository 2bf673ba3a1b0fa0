"""API tokens for ``bastion server``: random, shown once, stored only as SHA-256, scoped by role.

A token is 256 random bits (``bst_`` + URL-safe base64). Only its SHA-256 is kept, so a copy
of the database does not let anyone call the API; a 256-bit random secret needs no salt or slow
hash, because there is nothing to guess::

    store = TokenStore(workspace)
    secret, info = store.create("ci", Role.CONTRIBUTOR)
    assert store.authenticate(secret).principal == "ci"
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from bastion._time import utc_stamp
from bastion.errors import AuthenticationError, NotFoundError, UsageError
from bastion.store.roles import Role
from bastion.store.schema import api_tokens
from bastion.store.workspace import Workspace

__all__ = ["Identity", "TokenInfo", "TokenStore"]

TOKEN_PREFIX: Final = "bst_"  # noqa: S105 - a marker, not a secret
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")

@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: the principal recorded as the actor, and the role the token grants."""

    principal: str
    """The user or service the token stands for; the audit log's actor."""
    role: Role
    """The most the token allows (each role includes the ones below it)."""
    token: str
    """The token's name (not the secret)."""

    def allows(self, needed: Role) -> bool:
        """Whether this identity holds ``needed`` or a higher role."""
        return self.role.rank >= needed.rank


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed: everything but the secret."""

    name: str
    """Unique name of the token."""
    principal: str
    """Who it stands for."""
    role: Role
    """Its role."""
    created_at: str
    """When it was made (UTC)."""
    created_by: str
    """Who made it."""
    expires_at: str | None
    """When it stops working, if ever."""
    revoked_at: str | None
    """When it was revoked, if it was."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "principal": self.principal,
            "role": self.role.value,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


def token_digest(token: str) -> str:
    """The SHA-256 stored for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """Create, list, revoke and check API tokens in the workspace database; every change is
    audited."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def create(
        self,
        name: str,
        role: Role,
        *,
        principal: str | None = None,
        expires_in: timedelta | None = None,
    ) -> tuple[str, TokenInfo]:
        """Make a token; return the secret (shown once, never stored) and its record."""
        principal = principal or name
        for label, value in (("token name", name), ("principal", principal)):
            if not _NAME_RE.match(value):
                raise UsageError(
                    f"{label} {value!r} is not allowed",
                    hint="use letters, digits and . _ @ - (at most 100 characters)",
                )
        if expires_in is not None and expires_in <= timedelta(0):
            raise UsageError("a token's lifetime must be positive")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = {
            "name": name,
            "principal": principal,
            "role": role.value,
            "token_sha256": token_digest(secret),
            "created_at": utc_stamp(now),
            "created_by": self._ws.settings.actor,
            "expires_at": utc_stamp(now + expires_in) if expires_in else None,
            "revoked_at": None,
        }
        try:
            with self._ws.engine.begin() as conn:
                conn.execute(insert(api_tokens).values(**row))
        except DBIntegrityError:
            raise UsageError(
                f"a token named {name!r} already exists",
                hint="choose another name, or revoke the old token first",
            ) from None
        self._ws.record(
            "token.create",
            f"token:{name}",
            principal=principal,
            role=role.value,
            expires_at=row["expires_at"],
        )
        return secret, _info(row)

    def list(self) -> list[TokenInfo]:
        """Every token, active or not, oldest first."""
        with self._ws.engine.connect() as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.id)).mappings()
            return [_info(row) for row in rows]

    def revoke(self, name: str) -> TokenInfo:
        """Stop a token working at once; the record stays for the audit trail."""
        with self._ws.engine.begin() as conn:
            done = conn.execute(
                update(api_tokens)
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=utc_stamp())
            ).rowcount
            row = (
                conn.execute(select(api_tokens).where(api_tokens.c.name == name)).mappings().first()
            )
        if row is None:
            raise NotFoundError(f"no token named {name!r}", hint="see 'bastion token list'")
        if done:
            self._ws.record("token.revoke", f"token:{name}", principal=row["principal"])
        return _info(row)

    def authenticate(self, secret: str) -> Identity:
        """The identity a presented token stands for, or :class:`AuthenticationError`.

        Checks: 1. the token has our prefix (a cheap refusal of garbage); 2. its SHA-256 is
        known; 3. it is not revoked; 4. it has not expired.
        """
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:  # 1.
            raise AuthenticationError("the API token is malformed")
        with self._ws.engine.connect() as conn:
            row = (
                conn.execute(
                    select(api_tokens).where(api_tokens.c.token_sha256 == token_digest(secret))
                )
                .mappings()
                .first()
            )
        if row is None:  # 2.
            raise AuthenticationError("the API token is not known")
        if row["revoked_at"] is not None:  # 3.
            raise AuthenticationError("the API token was revoked")
        if row["expires_at"] is not None and row["expires_at"] <= utc_stamp():  # 4.
            raise AuthenticationError("the API token has expired")
        return Identity(principal=row["principal"], role=Role(row["role"]), token=row["name"])


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        name=row["name"],
        principal=row["principal"],
        role=Role(row["role"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )
