"""``bastion init``: create a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from bastion.cli._context import state
from bastion.store.workspace import init_workspace


def register(app: typer.Typer) -> None:
    """Add ``init`` to ``app``."""
    app.command("init")(init)


def init(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(help="Where to create .bastion/ (default: here).")
    ] = Path("."),
) -> None:
    """Create a workspace: config, database, blob store and keys (secrets mode 0600).

    Refuses to touch an existing workspace. Set BASTION_DATABASE_URL to keep the catalog in
    PostgreSQL instead of the embedded SQLite.
    """
    st = state(ctx)
    ws = init_workspace(directory)
    try:
        st.err.print(f"created workspace {ws.settings.home}")
        st.err.print(f"  database  {_redact(ws.settings.database_url)}")
        st.err.print(f"  blobs     {ws.settings.blob_url}")
        st.err.print(f"  keys      {ws.settings.signing_key_file.parent} (0600)")
        st.err.print(f"  key id    {ws.signer.verifying_key.key_id[:16]}…")
    finally:
        ws.close()


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
