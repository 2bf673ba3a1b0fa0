"""Roles: what a principal may do, on one asset (collaborators) or through one API token.

Each role includes the ones before it: ``viewer < contributor < reviewer < admin``
(DESIGN invariant 5, least privilege by default)::

    >>> Role.REVIEWER.rank > Role.CONTRIBUTOR.rank
    True
"""

from __future__ import annotations

import enum

__all__ = ["Role"]


class Role(enum.StrEnum):
    """A collaborator's role on one asset, or the most an API token allows."""

    VIEWER = "viewer"
    CONTRIBUTOR = "contributor"
    REVIEWER = "reviewer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Order of privilege, viewer lowest."""
        return list(Role).index(self)
