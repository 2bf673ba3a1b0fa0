"""Assessments bound to a version, the workspace's release policy, and the gate between them.

NCSC 2.1: a version reaches review approval and ``production`` only with evidence of how it
stands up to attack. The gate is: a stored assessment of *this* version's digest under *the
current* release policy's digest that passed, or a risk someone accepted, with a reason, for
exactly that version and policy. A new release policy makes every older assessment stale.

The catalog knows a policy only by its digest and its parsed body (``bastion.assess`` reads
and validates it; the catalog stores and compares), so it never imports the assessor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Connection, and_, insert, select

from bastion._fs import atomic_write
from bastion._time import utc_stamp
from bastion.catalog._context import CatalogContext
from bastion.catalog._rows import VersionRow
from bastion.catalog.records import Status
from bastion.errors import AccessDeniedError, ConfigError, UsageError
from bastion.store import schema as t
from bastion.store.roles import Role

__all__ = ["check_gate", "listing", "record", "release_policy", "set_release_policy"]

_FILE: Final = "release-policy.json"
_RULE: Final = "assess.release"


def release_policy(ctx: CatalogContext) -> dict[str, Any] | None:
    """The workspace's release policy (``digest``, ``source``, ``policy``, who set it, when),
    or None when none is set (then there is no assessment gate)."""
    path = ctx.workspace.settings.home / _FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the release policy {path}: {exc.strerror}",
                                  hint="check the file's permissions") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or len(str(data["digest"])) != 64:
            raise ValueError
    except (ValueError, KeyError):
        raise ConfigError(
            f"the release policy record {path} is damaged",
            hint="set it again: bastion assess policy release POLICY.yaml") from None
    return data


def set_release_policy(ctx: CatalogContext, digest: str, policy: Mapping[str, Any],
                       source: str) -> None:
    """Make ``policy`` (validated by the caller, known by ``digest``) the release policy."""
    if len(digest) != 64:
        raise UsageError(f"{digest!r} is not a SHA-256 digest")
    previous = release_policy(ctx)
    body = {"digest": digest, "source": source, "set_by": ctx.actor, "at": utc_stamp(),
            "policy": dict(policy)}
    atomic_write(ctx.workspace.settings.home / _FILE,
                 (json.dumps(body, indent=1, sort_keys=True) + "\n").encode())
    ctx.audit("policy.release.set", source, digest=digest,
              previous=previous["digest"] if previous else None)


def record(ctx: CatalogContext, ref: str, *, policy_digest: str, passed: bool,
           document: Mapping[str, Any]) -> int:
    """Store one assessment of ``ref`` (a contributor on the asset); return its id."""
    with ctx.write() as conn:
        v = ctx.resolve(conn, ref)
        ctx.require(conn, v.asset_id, Role.CONTRIBUTOR, f"record an assessment of {v.ref}")
        if v.status is Status.DESTROYED:
            raise UsageError(f"{v.ref} is destroyed; it cannot be assessed")
        key = conn.execute(insert(t.assessments).values(
            version_id=v.id, digest=v.digest, policy_digest=policy_digest, passed=passed,
            record=json.dumps(document, sort_keys=True, default=str), actor=ctx.actor,
            at=utc_stamp(),
        )).inserted_primary_key
        assert key is not None  # an INSERT always has one
        row_id = int(key[0])
        ctx.audit("version.assessment", v.ref, connection=conn, assessment=row_id,
                  digest=v.digest, policy_digest=policy_digest, passed=passed)
    return row_id


def listing(ctx: CatalogContext, conn: Connection, v: VersionRow) -> list[dict[str, Any]]:
    """Every assessment of ``v``, oldest first, each saying whether it is still current."""
    current = release_policy(ctx)
    return _listing(conn, v, current["digest"] if current else None)


def _listing(conn: Connection, v: VersionRow, current: str | None) -> list[dict[str, Any]]:
    out = []
    for row in conn.execute(
        select(t.assessments.c.id, t.assessments.c.digest, t.assessments.c.policy_digest,
               t.assessments.c.passed, t.assessments.c.actor, t.assessments.c.at)
        .where(t.assessments.c.version_id == v.id).order_by(t.assessments.c.id)
    ):
        stale = row.digest != v.digest or (current is not None and row.policy_digest != current)
        out.append({"id": int(row.id), "at": row.at, "actor": row.actor,
                    "policy_digest": row.policy_digest, "passed": bool(row.passed),
                    "stale": stale})
    return out


def check_gate(ctx: CatalogContext, conn: Connection, v: VersionRow, action: str,
               accept_risk: str | None) -> None:
    """Refuse ``action`` on ``v`` unless it passed the release policy, or its risk is
    accepted (now, with ``accept_risk``'s reason, or earlier for this policy)."""
    current = release_policy(ctx)
    if current is None:
        if accept_risk is not None:
            raise UsageError("there is no release policy, so no risk to accept",
                             hint="drop --accept-risk, or set a policy: bastion assess policy "
                                  "release FILE")
        return
    digest = current["digest"]
    passed = conn.execute(select(t.assessments.c.id).where(and_(
        t.assessments.c.version_id == v.id, t.assessments.c.digest == v.digest,
        t.assessments.c.policy_digest == digest, t.assessments.c.passed.is_(True),
    )).limit(1)).scalar()
    if passed is not None:
        return
    rules = json.dumps([f"{_RULE}:{digest}"])
    accepted = conn.execute(select(t.accepted_risks.c.id).where(and_(
        t.accepted_risks.c.version_id == v.id, t.accepted_risks.c.rules == rules,
    )).limit(1)).scalar()
    if accepted is not None:
        return
    if accept_risk is not None:
        if not accept_risk.strip():
            raise UsageError("--accept-risk needs a reason", param="accept_risk")
        conn.execute(insert(t.accepted_risks).values(
            version_id=v.id, reason=accept_risk, actor=ctx.actor, at=utc_stamp(), rules=rules))
        ctx.audit("version.accept_risk", v.ref, connection=conn, gate=_RULE,
                  policy_digest=digest, reason=accept_risk, step=action)
        return
    assessed = _listing(conn, v, digest)
    why = ("its assessment under it failed" if any(not a["stale"] for a in assessed)
           else "it has no assessment under it (older ones are stale)" if assessed
           else "it has never been assessed")
    raise AccessDeniedError(
        f"{v.ref} cannot {action}: the release policy ({current['source']}, sha256 "
        f"{digest[:12]}…) requires a passing assessment, and {why}",
        hint=f"assess it: bastion assess run {v.ref} --data TEST_DATA (the release policy is "
             "the default there); or accept the risk with --accept-risk REASON (recorded)")
