"""``bastion card``: the card schema, validating a card file, exporting a registered card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bastion.catalog.cards import (
    CardFormat,
    CardKind,
    DisclosureLevel,
    card_schema,
    export_card,
    load_card,
)
from bastion.cli._context import catalog, state
from bastion.cli._output import write_text

app = typer.Typer(
    help="Model and dataset cards (NCSC 2.5): schema, validation, export at a disclosure "
    "level (NCSC 1.3).",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    """Add the ``card`` group to the root app."""
    root.add_typer(app, name="card")


@app.command("schema")
def schema(
    ctx: typer.Context,
    kind: Annotated[CardKind, typer.Argument(help="model or dataset.")],
    output: Annotated[Path | None, typer.Option(help="Write the schema here.")] = None,
) -> None:
    """Print the JSON Schema (draft 2020-12) of a model or dataset card.

    Fields marked readOnly (integrity, metrics, accepted_risks) are filled in by Bastion and
    refused in a card file.
    """
    write_text(state(ctx), json.dumps(card_schema(kind), indent=2), output)


@app.command("validate")
def validate(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="A card: YAML, JSON, or Markdown with Hugging Face front matter.")
    ],
    kind: Annotated[
        CardKind | None, typer.Option(help="Expect this kind (when the file does not say).")
    ] = None,
    fmt: Annotated[
        CardFormat | None,
        typer.Option("--format", help="Also print the card normalised: yaml, json, hf, cyclonedx."),
    ] = None,
) -> None:
    """Check a card file; exit 0 when valid, 2 with one line per wrong field otherwise.

    Example: bastion card validate card.yaml --format json
    """
    st = state(ctx)
    card = load_card(file, kind=CardKind(kind) if kind else None)
    st.err.print(f"{file}: valid {card.kind} card (schema version {card.schema_version})")
    if fmt is not None:
        write_text(st, export_card(card, fmt, DisclosureLevel.INTERNAL), None)


@app.command("export")
def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version: NAME@VERSION or NAME@ALIAS.")],
    fmt: Annotated[
        CardFormat, typer.Option("--format", help="yaml, json, hf (Hugging Face) or cyclonedx.")
    ] = CardFormat.YAML,
    level: Annotated[
        DisclosureLevel,
        typer.Option(help="public leaves out what helps an attacker (see docs/cards.md)."),
    ] = DisclosureLevel.INTERNAL,
    output: Annotated[Path | None, typer.Option(help="Write the card here.")] = None,
) -> None:
    """Export a registered version's card; every export is recorded in the audit log.

    Example: bastion card export digits@2 --format cyclonedx --level public --output bom.json
    """
    text = catalog(ctx).export_card(ref, CardFormat(fmt), DisclosureLevel(level))
    write_text(state(ctx), text, output)
