"""Who may do what, and how a version moves: roles, reviews, aliases, rollback, destruction.

NCSC 2.1: a version reaches ``production`` only after independent review (never its author's);
every change is one transaction with its audit entry.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, func, insert, select, update

from bastion._time import utc_stamp
from bastion.catalog._assessments import check_gate
from bastion.catalog._context import CatalogContext
from bastion.catalog._rows import VersionRow
from bastion.catalog.records import Ref, Status
from bastion.errors import AccessDeniedError, UsageError
from bastion.store import schema as t
from bastion.store.roles import Role

__all__ = [
    "approve",
    "destroy",
    "grant",
    "reject",
    "request_review",
    "rollback",
    "set_alias",
]


def grant(ctx: CatalogContext, name: str, principal: str, role: Role) -> None:
    """Give ``principal`` a role on an asset (admin only)."""
    if not principal.strip():
        raise UsageError("the principal (user name) is empty")
    with ctx.write() as conn:
        asset_id = ctx.asset_id(conn, name)
        ctx.require(conn, asset_id, Role.ADMIN, f"grant roles on {name}")
        current = conn.execute(
            select(t.collaborators.c.role).where(and_(
                t.collaborators.c.asset_id == asset_id,
                t.collaborators.c.principal == principal,
            ))
        ).scalar()
        if current is None:
            conn.execute(insert(t.collaborators).values(
                asset_id=asset_id, principal=principal, role=role.value
            ))
        else:
            conn.execute(update(t.collaborators).where(and_(
                t.collaborators.c.asset_id == asset_id,
                t.collaborators.c.principal == principal,
            )).values(role=role.value))
        ctx.audit("asset.grant", name, connection=conn, principal=principal, role=role.value,
                    previous=current)


def request_review(ctx: CatalogContext, ref: str, comment: str = "") -> Status:
    """Ask reviewers to look at a draft version (author or contributor)."""
    with ctx.write() as conn:
        v = ctx.resolve(conn, ref)
        if v.author != ctx.actor:
            ctx.require(conn, v.asset_id, Role.CONTRIBUTOR, f"request review of {v.ref}")
        if v.status is not Status.DRAFT:
            raise UsageError(f"{v.ref} is {v.status.value}; only a draft can go to review")
        _review_row(ctx, conn, v, "requested", comment)
        set_status(ctx, conn, v, Status.IN_REVIEW, "review requested")
    return Status.IN_REVIEW


def approve(
    ctx: CatalogContext, ref: str, comment: str = "", *, required_approvals: int = 1,
    accept_risk: str | None = None,
) -> Status:
    """Approve a version in review; it becomes approved at the required count.

    Rules: 1. the reviewer holds ``reviewer`` (or ``admin``) on the asset; 2. the author
    cannot approve their own version (NCSC 2.1: an independent review); 3. one approval per
    reviewer per review round; 4. under a release policy, the version passed it, or its risk
    is accepted (``accept_risk``: the reason, recorded).
    """
    with ctx.write() as conn:
        v = ctx.resolve(conn, ref)
        _check_reviewer(ctx, conn, v, "approve")
        check_gate(ctx, conn, v, "be approved", accept_risk)  # 4.
        round_start = _round_start(conn, v)
        already = conn.execute(
            select(func.count()).select_from(t.reviews).where(and_(
                t.reviews.c.version_id == v.id, t.reviews.c.id > round_start,
                t.reviews.c.reviewer == ctx.actor, t.reviews.c.decision == "approve",
            ))
        ).scalar_one()
        if already:  # 3.
            raise UsageError(f"{ctx.actor} has already approved {v.ref} in this review")
        _review_row(ctx, conn, v, "approve", comment)
        approvals = int(conn.execute(
            select(func.count()).select_from(t.reviews).where(and_(
                t.reviews.c.version_id == v.id, t.reviews.c.id > round_start,
                t.reviews.c.decision == "approve",
            ))
        ).scalar_one())
        if approvals >= required_approvals:
            set_status(ctx, conn, v, Status.APPROVED,
                        f"{approvals} of {required_approvals} approvals")
            return Status.APPROVED
    return Status.IN_REVIEW


def reject(ctx: CatalogContext, ref: str, comment: str = "") -> Status:
    """Request changes: the version goes back to draft (a reviewer, not the author)."""
    if not comment.strip():
        raise UsageError("say what must change", hint="give a comment", param="comment")
    with ctx.write() as conn:
        v = ctx.resolve(conn, ref)
        _check_reviewer(ctx, conn, v, "reject")
        _review_row(ctx, conn, v, "reject", comment)
        set_status(ctx, conn, v, Status.DRAFT, "changes requested")
    return Status.DRAFT


def destroy(ctx: CatalogContext, ref: str, reason: str) -> None:
    """Crypto-shred a version: erase its wrapped data key, then delete its blobs (admin).

    Without the data key the blobs are unreadable even from a backup or a disk image; other
    versions have their own keys and are untouched.
    """
    if not reason.strip():
        raise UsageError("say why the version is destroyed", param="reason")
    with ctx.write() as conn:
        v = ctx.resolve(conn, ref)
        ctx.require(conn, v.asset_id, Role.ADMIN, f"destroy {v.ref}")
        if v.status is Status.DESTROYED:
            raise UsageError(f"{v.ref} is already destroyed")
        conn.execute(update(t.versions).where(t.versions.c.id == v.id).values(wrapped_key=None))
        conn.execute(t.aliases.delete().where(t.aliases.c.version_id == v.id))
        set_status(ctx, conn, v, Status.DESTROYED, reason)
        ctx.audit("version.destroy", v.ref, connection=conn, digest=v.digest, scope=v.scope,
                    reason=reason)
    ctx.store.delete_scope(v.scope)


def set_alias(ctx: CatalogContext, name: str, alias: str, version: int,
              accept_risk: str | None = None) -> None:
    """Point ``alias`` at a version; ``production`` only at an approved one that passed the
    release policy, or whose risk is accepted (NCSC 2.1)."""
    alias = Ref.parse(f"{name}@{alias}").alias or ""
    if not alias:
        raise UsageError(f"{alias!r} is not an alias name", hint="letters first: production")
    with ctx.write() as conn:
        v = ctx.resolve(conn, f"{name}@{version}")
        ctx.require(conn, v.asset_id, Role.CONTRIBUTOR, f"move aliases of {name}")
        _point(ctx, conn, v, alias, "set")
        if alias == "production":  # in the same transaction: refused, nothing moved
            check_gate(ctx, conn, v, "go to production", accept_risk)


def rollback(ctx: CatalogContext, name: str, alias: str = "production") -> str:
    """Move ``alias`` back to the version it pointed at before; return that ``NAME@VER``."""
    with ctx.write() as conn:
        asset_id = ctx.asset_id(conn, name)
        ctx.require(conn, asset_id, Role.CONTRIBUTOR, f"move aliases of {name}")
        stack: list[int] = []
        for row in conn.execute(
            select(t.alias_history.c.action, t.alias_history.c.version_id)
            .where(and_(t.alias_history.c.asset_id == asset_id,
                        t.alias_history.c.alias == alias))
            .order_by(t.alias_history.c.id)
        ):
            if row.action == "rollback":
                stack.pop()
            else:
                stack.append(int(row.version_id))
        if len(stack) < 2:
            raise UsageError(
                f"{name}@{alias} has no earlier version to roll back to",
                hint=f"point it explicitly: bastion alias set {name} {alias} VERSION",
            )
        number = conn.execute(
            select(t.versions.c.number).where(t.versions.c.id == stack[-2])
        ).scalar_one()
        v = ctx.resolve(conn, f"{name}@{number}")
        _point(ctx, conn, v, alias, "rollback")
    return v.ref


def _check_reviewer(ctx: CatalogContext, conn: Connection, v: VersionRow, verb: str) -> None:
    ctx.require(conn, v.asset_id, Role.REVIEWER, f"{verb} {v.ref}")  # 1.
    if v.author == ctx.actor:  # 2.
        raise AccessDeniedError(
            f"{ctx.actor} registered {v.ref} and cannot {verb} it",
            hint="another reviewer must review it (NCSC 2.1: independent review)",
        )
    if v.status is not Status.IN_REVIEW:
        raise UsageError(
            f"{v.ref} is {v.status.value}, not in review",
            hint=f"the author runs 'bastion review request {v.ref}' first",
        )


def _round_start(conn: Connection, v: VersionRow) -> int:
    return int(conn.execute(
        select(func.coalesce(func.max(t.reviews.c.id), 0)).where(and_(
            t.reviews.c.version_id == v.id, t.reviews.c.decision == "requested",
        ))
    ).scalar_one())


def _review_row(
    ctx: CatalogContext, conn: Connection, v: VersionRow, decision: str, comment: str
) -> None:
    conn.execute(insert(t.reviews).values(
        version_id=v.id, reviewer=ctx.actor, decision=decision, comment=comment, at=utc_stamp()
    ))
    ctx.audit(f"version.review.{decision}", v.ref, connection=conn, comment=comment)


def set_status(
    ctx: CatalogContext, conn: Connection, v: VersionRow, status: Status, reason: str
) -> None:
    """Move ``v`` to ``status`` inside ``conn``'s transaction, audited as ``version.status``."""
    conn.execute(update(t.versions).where(t.versions.c.id == v.id).values(status=status.value))
    ctx.audit("version.status", v.ref, connection=conn, to=status.value, reason=reason,
                **{"from": v.status.value})


def _point(ctx: CatalogContext, conn: Connection, v: VersionRow, alias: str, action: str) -> None:
    if v.status in (Status.DESTROYED, Status.ARCHIVED):
        raise UsageError(f"{v.ref} is {v.status.value}; an alias cannot point at it")
    if alias == "production" and v.status is not Status.APPROVED:
        raise AccessDeniedError(
            f"{v.ref} is {v.status.value}; production may only point at an approved version",
            hint=f"get it reviewed: bastion review request {v.ref}",
        )
    now = utc_stamp()
    previous = conn.execute(
        select(t.aliases.c.version_id).where(and_(
            t.aliases.c.asset_id == v.asset_id, t.aliases.c.alias == alias,
        ))
    ).scalar()
    if previous is None:
        conn.execute(insert(t.aliases).values(
            asset_id=v.asset_id, alias=alias, version_id=v.id, updated_at=now
        ))
    else:
        conn.execute(update(t.aliases).where(and_(
            t.aliases.c.asset_id == v.asset_id, t.aliases.c.alias == alias,
        )).values(version_id=v.id, updated_at=now))
    conn.execute(insert(t.alias_history).values(
        asset_id=v.asset_id, alias=alias, version_id=v.id, action=action, at=now,
        actor=ctx.actor,
    ))
    ctx.audit(f"alias.{action}", f"{v.name}@{alias}", connection=conn, version=v.number,
                digest=v.digest)
