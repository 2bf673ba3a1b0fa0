"""The catalog as its users see it: one protocol, two implementations.

:class:`~bastion.catalog.service.Catalog` works on a local workspace;
:class:`~bastion.client.remote.RemoteCatalog` talks to a ``bastion server``. Both return the
same records, so a front (the CLI, a script, a future gateway) is written once against
:class:`CatalogAPI` and never asks which one it holds::

    def promote(catalog: CatalogAPI, ref: str) -> None:
        catalog.approve(ref, "looked at the assessment")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from bastion.catalog.cards import AnyCard, CardFormat, DisclosureLevel
from bastion.catalog.records import (
    FsckReport,
    Kind,
    LineageReport,
    Status,
    Verification,
    VersionInfo,
    VersionSummary,
)
from bastion.catalog.signing import Manifest
from bastion.store.roles import Role

__all__ = ["CatalogAPI", "Registering"]

Card = AnyCard | Mapping[str, Any] | None


class CatalogAPI(Protocol):
    """Everything the fronts ask of a catalog. Each call is checked against the caller's role
    on the asset and audited, wherever the catalog runs."""

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
        """Register a version: scan, hash, encrypt, store, sign, record, audit."""
        ...

    def add_model(self, name: str, path: Path, **options: Any) -> VersionInfo:
        """:meth:`add` of a model."""
        ...

    def add_dataset(self, name: str, path: Path, **options: Any) -> VersionInfo:
        """:meth:`add` of a dataset."""
        ...

    def search(
        self,
        *,
        kind: Kind | None = None,
        text: str | None = None,
        sensitivity: str | None = None,
        status: Status | None = None,
        limit: int = 100,
    ) -> list[VersionSummary]:
        """Versions matching every filter given, by name then newest first."""
        ...

    def show(self, ref: str) -> VersionInfo:
        """Everything recorded about one version."""
        ...

    def lineage(self, ref: str) -> LineageReport:
        """What a version came from and what was built on it, transitively."""
        ...

    def get(self, ref: str, dest: Path, *, signature: Path | None = None) -> Manifest:
        """Write a version's files, verified, into the new directory ``dest``."""
        ...

    def export_card(self, ref: str, fmt: CardFormat, level: DisclosureLevel) -> str:
        """A version's card for an audience, in a format (audited)."""
        ...

    def verify(self, ref: str, *, deep: bool = False) -> Verification:
        """Re-hash, check the signature and the audit trail of a version."""
        ...

    def fsck(self, *, clean: bool = False) -> FsckReport:
        """Cross-check database, blob store and audit chain."""
        ...

    def grant(self, name: str, principal: str, role: Role) -> None:
        """Give a principal a role on an asset."""
        ...

    def request_review(self, ref: str, comment: str = "") -> Status:
        """Ask reviewers to look at a draft."""
        ...

    def approve(self, ref: str, comment: str = "", *, accept_risk: str | None = None) -> Status:
        """Approve a version in review (under a release policy: one that passed it, or with
        ``accept_risk``'s reason recorded)."""
        ...

    def reject(self, ref: str, comment: str = "") -> Status:
        """Send a version in review back to draft."""
        ...

    def set_alias(self, name: str, alias: str, version: int, *,
                  accept_risk: str | None = None) -> None:
        """Point an alias at a version (``production``: gated as :meth:`approve`)."""
        ...

    def rollback(self, name: str, alias: str = "production") -> str:
        """Move an alias back; return the ``NAME@VER`` it points at now."""
        ...


class Registering:
    """``add_model`` and ``add_dataset`` written once, over the implementation's ``add``."""

    def add_model(self: CatalogAPI, name: str, path: Path, **options: Any) -> VersionInfo:
        """Register a model version (``trained_on``, ``derived_from``, ``evaluated_on``…: see
        :meth:`CatalogAPI.add`)."""
        return self.add(Kind.MODEL, name, path, **options)

    def add_dataset(self: CatalogAPI, name: str, path: Path, **options: Any) -> VersionInfo:
        """Register a dataset version (``derived_from`` another dataset version, if any)."""
        return self.add(Kind.DATASET, name, path, **options)
