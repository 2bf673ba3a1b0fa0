"""``bastion server``: serve the catalog as a REST API (authentication always on)."""

from __future__ import annotations

from typing import Annotated

import typer

from bastion.cli._context import state, workspace
from bastion.store.tokens import TokenStore


def register(app: typer.Typer) -> None:
    """Add ``server`` to ``app``."""
    app.command("server")(server)


def server(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on; keep 127.0.0.1 behind a TLS proxy.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8470,
) -> None:
    """Serve the catalog as a REST API (OpenAPI at /openapi.json, errors as RFC 9457).

    Every route but /health needs 'Authorization: Bearer TOKEN' from 'bastion token create';
    every request is audited with the token's principal as the actor. Serve plain HTTP on
    localhost only and put a TLS-terminating proxy in front for anything else.
    """
    import uvicorn

    from bastion.server.app import create_app

    st = state(ctx)
    ws = workspace(ctx)
    active = [t for t in TokenStore(ws).list() if t.revoked_at is None]
    if not active:
        st.err.print(
            "[yellow]no API tokens yet: every request will get 401. Create one with "
            "'bastion token create --name NAME --role ROLE'.[/yellow]"
        )
    st.err.print(f"serving {ws.settings.home} on http://{host}:{port} (OpenAPI: /openapi.json)")
    uvicorn.run(create_app(ws), host=host, port=port, log_level="info", server_header=False)
