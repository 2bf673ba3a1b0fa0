"""``bastion export`` and ``bastion import``: signed bundles for air-gapped transfer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bastion.catalog.bundle import export_bundle, import_bundle
from bastion.cli._context import state, workspace
from bastion.cli._output import write_text
from bastion.errors import UsageError
from bastion.store.keys import VerifyingKey


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``import`` to ``app``."""
    app.command("export")(export)
    app.command("import")(import_)


def export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version: NAME@VERSION or NAME@ALIAS.")],
    out: Annotated[Path, typer.Argument(help="The bundle to write (a new .tar file).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write one version as a signed bundle: files, card, findings, lineage, signatures, key.

    The recipient checks it with 'bastion import', or without Bastion: untar it, then
    'model_signing verify key files --signature signature.sigstore.json --public_key
    signer-key.pem' (signer-key.pem is the key that signed the files: this workspace's, or
    the user's given with --signing-key at add). Give them this workspace's key id, printed
    here, by another channel: it signs the bundle and vouches for signer-key.pem.
    """
    st = state(ctx)
    result = export_bundle(workspace(ctx), ref, out)
    if as_json:
        write_text(st, json.dumps(result.to_dict(), indent=2), None)
    st.err.print(
        f"exported {result.ref} ({result.files} files, {result.size} bytes) to {result.path}\n"
        f"  bundle sha256  {result.sha256}\n  signing key id {result.key_id}"
        + (
            f"\n  files signed by user key {result.signer_key_id}"
            if result.signer_key_id != result.key_id
            else ""
        )
    )


def import_(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A bundle from 'bastion export'.")],
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            help="The exporting workspace's public key (PEM), which you trust to sign bundles; "
            "repeatable. It also vouches for a user's key that signed the files, so a version "
            "added with --signing-key needs no other key here.",
        ),
    ] = None,
    key_id: Annotated[
        list[str] | None,
        typer.Option("--key-id", help="The id of a key you trust, as 'bastion export' printed it."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Register under this asset name (default: as exported).")
    ] = None,
    accept_risk: Annotated[
        str | None,
        typer.Option(help="Register despite findings at or above high, for this reason."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Verify a bundle (signatures, every digest), rescan its files, and register them.

    Refused, with nothing registered: a key you do not trust (your workspace's own key is
    trusted), a changed file or card, links or unsafe paths in the tar, and findings at or
    above high unless --accept-risk says why (exit 1).
    """
    st = state(ctx)
    keys = [_load_key(path) for path in key or ()]
    result = import_bundle(
        workspace(ctx),
        bundle,
        trusted_keys=keys,
        trusted_key_ids=key_id or (),
        name=name,
        accept_risk=accept_risk,
    )
    if as_json:
        write_text(st, json.dumps(result.to_dict(), indent=2), None)
    st.err.print(
        f"imported {result.source} as {result.version.summary.ref} "
        f"(digest {result.version.summary.digest[:16]}…, signed by {result.key_id[:16]}…)"
    )
    for relation, ref in result.unresolved:
        st.err.print(f"  lineage not in this catalog, not recorded: {relation} {ref}")


def _load_key(path: Path) -> VerifyingKey:
    try:
        return VerifyingKey.from_pem(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read the key {path}: {exc.strerror}") from None
    except ValueError:
        raise UsageError(
            f"{path} is not a PEM public key", hint="pass the exporter's .pub.pem"
        ) from None
