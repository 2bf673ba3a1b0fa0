"""The asset catalog: register, read, verify, review and promote models and datasets.

NCSC 2.4 (assets protected at rest, every read logged), 2.5 (versions, cards, hashes, signatures,
lineage, rollback) and 2.1 (human review before production)::

    catalog = Catalog(workspace)
    data = catalog.add_dataset("digits-train", Path("data/"))
    model = catalog.add_model("digits", Path("model.joblib"), trained_on=[data.summary.ref])
    catalog.get("digits@1", Path("out/"))
    assert catalog.verify("digits@1").ok

:class:`Catalog` is a thin front: each method is one call into the module that does the work
(``_register``, ``_read``, ``_review``, ``_integrity``), all sharing one
:class:`~bastion.catalog._context.CatalogContext`. Every method is one transaction with its
audit entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.catalog import _assessments, _integrity, _read, _register, _review
from bastion.catalog._context import CatalogContext
from bastion.catalog._register import EnvironmentProbe, Registration, Scanner
from bastion.catalog.api import Card, Registering
from bastion.catalog.cards import CardFormat, DisclosureLevel
from bastion.catalog.records import (
    FsckReport,
    Kind,
    LineageReport,
    Relation,
    Status,
    Verification,
    VersionInfo,
    VersionSummary,
)
from bastion.catalog.signing import Manifest
from bastion.config import read_config
from bastion.errors import UsageError
from bastion.store.blobs import BlobStore, LocalBlobStore
from bastion.store.roles import Role
from bastion.store.workspace import Workspace

if TYPE_CHECKING:
    from bastion.catalog.bom import Distribution
    from bastion.scan.interface import ScanReport

__all__ = ["Catalog", "EnvironmentProbe", "Scanner"]


def standard_scanner(path: Path) -> ScanReport:
    """``bastion scan`` with each file's digest bound to the report (invariant 3)."""
    from bastion.scan import scan

    return scan(path, digest=True)


def standard_environment() -> Sequence[Distribution]:
    """The distributions installed in the interpreter Bastion runs in."""
    from bastion.deps import current_environment

    return current_environment()


class Catalog(Registering):
    """The catalog of one workspace.

    The scanner and the environment probe are what the catalog knows of ``scan`` and ``deps``:
    passed in (a test's stub, a service's configured scanner) or, by default, the standard
    ones. There is no way to build a catalog that registers without scanning (fail closed).
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        scanner: Scanner | None = None,
        environment: EnvironmentProbe | None = None,
        store: BlobStore | None = None,
        required_approvals: int | None = None,
    ) -> None:
        self._ctx = CatalogContext(
            workspace, store or LocalBlobStore.from_url(workspace.settings.blob_url)
        )
        self._scanner = scanner or standard_scanner
        self._environment = environment or standard_environment
        self.required_approvals = required_approvals or _configured_approvals(workspace)

    @property
    def workspace(self) -> Workspace:
        """The workspace this catalog lives in."""
        return self._ctx.workspace

    @property
    def store(self) -> BlobStore:
        """Where the encrypted blobs live."""
        return self._ctx.store

    @property
    def actor(self) -> str:
        """Who is acting (``BASTION_ACTOR`` or the OS user)."""
        return self._ctx.actor

    # -- registering -----------------------------------------------------------------------

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
        """Register a version: scan, hash, encrypt, store, sign, record, audit.

        ``trained_on`` and ``evaluated_on`` are datasets (models only), ``derived_from`` a
        version of the same kind. ``signing_key`` signs with a user's own EC P-256 key
        (unencrypted PKCS#8 PEM, mode 0600) instead of the workspace key; only its public
        half is recorded. ``derivation`` records how a dataset was made from its parent.
        """
        edges = {Relation.DERIVED_FROM: [derived_from] if derived_from else []}
        if kind is Kind.MODEL:
            edges |= {Relation.TRAINED_ON: list(trained_on),
                      Relation.EVALUATED_ON: list(evaluated_on)}
        elif list(trained_on) or list(evaluated_on):
            raise UsageError("a dataset is not trained or evaluated on anything",
                             hint="give lineage of a dataset as derived_from")
        request = Registration(kind, name, path, card, edges, accept_risk, sensitivity,
                               signing_key, derivation)
        ref = _register.register(self._ctx, request, self._scanner, self._environment)
        return self.show(ref)

    # -- reading ---------------------------------------------------------------------------

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
        return _read.search(self._ctx, kind=kind, text=text, sensitivity=sensitivity,
                            status=status, limit=limit)

    def show(self, ref: str) -> VersionInfo:
        """Everything recorded about one version (``NAME``, ``NAME@N`` or ``NAME@ALIAS``)."""
        return _read.show(self._ctx, ref)

    def lineage(self, ref: str) -> LineageReport:
        """Walk lineage both ways, transitively (a poisoned dataset → every model built on it)."""
        return _read.lineage(self._ctx, ref)

    def get(self, ref: str, dest: Path, *, signature: Path | None = None) -> Manifest:
        """Decrypt a version into the new directory ``dest``, verifying every digest as it
        writes; see :func:`bastion.catalog._read.get`."""
        return _read.get(self._ctx, ref, dest, signature=signature)

    def export_card(self, ref: str, fmt: CardFormat, level: DisclosureLevel) -> str:
        """A version's stored card for ``level`` in ``fmt``; the disclosure is audited."""
        return _read.export_card(self._ctx, ref, fmt, level)

    # -- checking --------------------------------------------------------------------------

    def verify(self, ref: str, *, deep: bool = False) -> Verification:
        """Re-hash every blob, check the signature and the version's audit entries; see
        :func:`bastion.catalog._integrity.verify` for the checks."""
        return _integrity.verify(self._ctx, ref, deep=deep)

    def fsck(self, *, clean: bool = False) -> FsckReport:
        """Cross-check database, blob store and audit chain; with ``clean``, remove orphans."""
        return _integrity.fsck(self._ctx, clean=clean)

    # -- access, reviews, aliases, destruction ---------------------------------------------

    def grant(self, name: str, principal: str, role: Role) -> None:
        """Give ``principal`` a role on an asset (admin only)."""
        _review.grant(self._ctx, name, principal, role)

    def request_review(self, ref: str, comment: str = "") -> Status:
        """Ask reviewers to look at a draft version (author or contributor)."""
        return _review.request_review(self._ctx, ref, comment)

    def approve(self, ref: str, comment: str = "", *, accept_risk: str | None = None) -> Status:
        """Approve a version in review; it becomes approved at the required count. Under a
        release policy it must have passed it, or ``accept_risk`` says why not."""
        return _review.approve(self._ctx, ref, comment,
                               required_approvals=self.required_approvals,
                               accept_risk=accept_risk)

    def reject(self, ref: str, comment: str = "") -> Status:
        """Request changes: the version goes back to draft (a reviewer, not the author)."""
        return _review.reject(self._ctx, ref, comment)

    def destroy(self, ref: str, reason: str) -> None:
        """Crypto-shred a version: erase its wrapped data key, then delete its blobs (admin)."""
        _review.destroy(self._ctx, ref, reason)

    def set_alias(self, name: str, alias: str, version: int, *,
                  accept_risk: str | None = None) -> None:
        """Point ``alias`` at a version; ``production`` only at an approved one (NCSC 2.1)
        that passed the release policy, or whose risk ``accept_risk`` accepts."""
        _review.set_alias(self._ctx, name, alias, version, accept_risk)

    def rollback(self, name: str, alias: str = "production") -> str:
        """Move ``alias`` back to the version it pointed at before; return that ``NAME@VER``.
        Not gated: it returns to a version that already served, the way out of an incident."""
        return _review.rollback(self._ctx, name, alias)

    # -- assessments -----------------------------------------------------------------------

    def release_policy(self) -> dict[str, Any] | None:
        """The workspace's release policy (digest, source, body), or None (no gate)."""
        return _assessments.release_policy(self._ctx)

    def set_release_policy(self, digest: str, policy: Mapping[str, Any], source: str) -> None:
        """Make ``policy`` (validated by ``bastion.assess``) the release policy, audited."""
        _assessments.set_release_policy(self._ctx, digest, policy, source)

    def record_assessment(self, ref: str, *, policy_digest: str, passed: bool,
                          document: Mapping[str, Any]) -> int:
        """Store an assessment of ``ref``, bound to its digest; return the record's id."""
        return _assessments.record(self._ctx, ref, policy_digest=policy_digest, passed=passed,
                                   document=document)


def _configured_approvals(workspace: Workspace) -> int:
    section = read_config(workspace.settings.home).get("catalog") or {}
    value = section.get("required_approvals", 1) if isinstance(section, dict) else 1
    if not isinstance(value, int) or value < 1:
        raise UsageError(
            f"catalog.required_approvals must be a positive integer, not {value!r}",
            hint=f"edit {workspace.settings.config_file}",
        )
    return value
