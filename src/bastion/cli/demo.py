"""``bastion demo``: the end-to-end demo on the embedded example."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.cli._context import state


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command("demo")(demo)


def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to run (default: a new temporary directory)."),
    ] = None,
) -> None:
    """Run the end-to-end demo on scikit-learn's digits and print where its report is."""
    from bastion.demo import run_demo  # scikit-learn and the catalog: only this command needs them

    st = state(ctx)
    result = run_demo(directory, progress=lambda line: st.err.print(line, highlight=False))
    st.out.print(f"report: {result.report}")
    raise typer.Exit(0 if result.ok else 1)
