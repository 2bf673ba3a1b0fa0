"""``bastion review request|approve|reject``, ``alias set``, ``rollback``, ``grant``.

Review before production (NCSC 2.1): a reviewer who is not the author approves; the number of
approvals needed is ``catalog.required_approvals`` in ``config.yaml`` (default 1).
"""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.cli._context import catalog, state
from bastion.cli.catalog import RefArgument
from bastion.store.roles import Role

__all__ = ["register"]

review_app = typer.Typer(help="Review versions before they reach production.", no_args_is_help=True)
alias_app = typer.Typer(
    help="Point aliases (production, staging, …) at versions.", no_args_is_help=True
)
CommentOption = Annotated[str, typer.Option("--comment", "-m", help="What the reviewer says.")]


def register(app: typer.Typer) -> None:
    """Add the review, alias, rollback and grant commands to ``app``."""
    app.add_typer(review_app, name="review")
    app.add_typer(alias_app, name="alias")
    app.command("rollback")(rollback)
    app.command("grant")(grant)


@review_app.command("request")
def request(ctx: typer.Context, ref: RefArgument, comment: CommentOption = "") -> None:
    """Send a draft version to review (its author or a contributor)."""
    status = catalog(ctx).request_review(ref, comment)
    state(ctx).err.print(f"{ref}: {status.value}")


AcceptRiskOption = Annotated[str | None, typer.Option(
    "--accept-risk", metavar="REASON",
    help="Under a release policy (bastion assess policy release): go ahead without a passing "
         "assessment, for this reason (recorded in the catalog and the audit log).")]


@review_app.command("approve")
def approve(ctx: typer.Context, ref: RefArgument, comment: CommentOption = "",
            accept_risk: AcceptRiskOption = None) -> None:
    """Approve a version in review (reviewer role; never the author's own version). Under a
    release policy the version must have passed `bastion assess` under it."""
    status = catalog(ctx).approve(ref, comment, accept_risk=accept_risk)
    waiting = (
        " (approval recorded; more approvals are required)" if status.value == "in_review" else ""
    )
    state(ctx).err.print(f"{ref}: {status.value}{waiting}")


@review_app.command("reject")
def reject(ctx: typer.Context, ref: RefArgument, comment: CommentOption = "") -> None:
    """Request changes: the version returns to draft. Say what must change with --comment."""
    status = catalog(ctx).reject(ref, comment)
    state(ctx).err.print(f"{ref}: {status.value}")


@alias_app.command("set")
def set_alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Asset name.")],
    alias: Annotated[str, typer.Argument(help="Alias: production, staging, …")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    accept_risk: AcceptRiskOption = None,
) -> None:
    """Point ALIAS at a version; production only at an approved one that passed the release
    policy (when the workspace has one)."""
    catalog(ctx).set_alias(name, alias, version, accept_risk=accept_risk)
    state(ctx).err.print(f"{name}@{alias} → {name}@{version}")


def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Asset name.")],
    alias: Annotated[str, typer.Option(help="The alias to move back.")] = "production",
) -> None:
    """Move an alias back to the version it pointed at before the last move."""
    target = catalog(ctx).rollback(name, alias)
    state(ctx).err.print(f"{name}@{alias} → {target}")


def grant(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Asset name.")],
    principal: Annotated[str, typer.Argument(help="User name (as in BASTION_ACTOR).")],
    role: Annotated[Role, typer.Argument(help="viewer, contributor, reviewer or admin.")],
) -> None:
    """Give a user a role on an asset (admins only)."""
    catalog(ctx).grant(name, principal, role)
    state(ctx).err.print(f"{principal} is {role.value} of {name}")
