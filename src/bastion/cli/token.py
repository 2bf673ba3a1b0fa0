"""``bastion token``: API tokens for ``bastion server`` (shown once, stored hashed)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from bastion.cli._context import state, workspace
from bastion.cli._output import write_text
from bastion.store.roles import Role
from bastion.store.tokens import TokenStore

app = typer.Typer(
    help="API tokens for 'bastion server': create (shown once), list, revoke.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    """Add the ``token`` group to the root app."""
    root.add_typer(app, name="token")


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Unique name of the token.")],
    role: Annotated[Role, typer.Option("--role", help="viewer, contributor, reviewer or admin.")],
    user: Annotated[
        str | None,
        typer.Option(help="Who the token stands for in the audit log (default: --name)."),
    ] = None,
    expires_in: Annotated[
        int | None, typer.Option("--expires-in", min=1, help="Days until the token expires.")
    ] = None,
) -> None:
    """Create a token and print it once on stdout; only its SHA-256 is stored.

    Example: bastion token create --name ci --role contributor --expires-in 90
    """
    st = state(ctx)
    secret, info = TokenStore(workspace(ctx)).create(
        name,
        Role(role),
        principal=user,
        expires_in=timedelta(days=expires_in) if expires_in else None,
    )
    write_text(st, secret, None)
    st.err.print(
        f"token {info.name!r} for {info.principal} ({info.role.value}) created; "
        "copy it now, it is not shown again. Use it as 'Authorization: Bearer TOKEN'."
    )


@app.command("list")
def list_tokens(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List tokens (never their secrets), revoked and expired ones included."""
    st = state(ctx)
    tokens = TokenStore(workspace(ctx)).list()
    if as_json:
        write_text(st, json.dumps([t.to_dict() for t in tokens], indent=2), None)
        return
    table = Table(title=f"API tokens ({len(tokens)})")
    for column in ("name", "principal", "role", "created", "expires", "revoked"):
        table.add_column(column)
    for t in tokens:
        table.add_row(
            t.name,
            t.principal,
            t.role.value,
            t.created_at[:19],
            t.expires_at or "never",
            t.revoked_at or "",
        )
    st.out.print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="The token's name.")]
) -> None:
    """Revoke a token at once (the record stays, for the audit trail)."""
    info = TokenStore(workspace(ctx)).revoke(name)
    state(ctx).err.print(f"token {info.name!r} revoked")
