"""One exception hierarchy for Bastion.

Every error a user can meet is a :class:`BastionError` whose message says what went wrong and
whose ``hint`` says what to do. Third-party exceptions are converted where they enter Bastion
(``raise StorageError(...) from exc``) so the CLI can print one line and exit 2 without a
traceback.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AuditError",
    "AuthenticationError",
    "BastionError",
    "ConfigError",
    "IntegrityError",
    "NotFoundError",
    "StorageError",
    "UsageError",
    "WorkspaceError",
]


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.param = param
        """The argument the error is about (``accept_risk``), for a front to name it its own
        way: the CLI as ``--accept-risk``, the REST API as a query parameter."""

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(BastionError):
    """The user asked for something malformed: a bad value, a missing key, a wrong type."""


class ConfigError(BastionError):
    """Settings or a configuration file cannot be used."""


class WorkspaceError(BastionError):
    """No workspace where one is needed, or one where none should be."""


class StorageError(BastionError):
    """The database or blob store cannot be reached or read."""


class NotFoundError(BastionError):
    """A named thing (asset, version, entry) does not exist."""


class IntegrityError(BastionError):
    """Stored data does not match what was recorded: tampering or corruption."""


class AuditError(IntegrityError):
    """The audit log cannot be written or fails verification."""


class AccessDeniedError(BastionError):
    """The actor lacks the role, or a rule forbids the act (approving one's own version)."""


class AuthenticationError(BastionError):
    """No credentials, or credentials that are unknown, revoked or expired (HTTP 401)."""
