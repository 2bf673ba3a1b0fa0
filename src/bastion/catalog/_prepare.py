"""What goes into a registration: which files, which card, which lineage references."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from bastion.catalog._rows import VersionRow
from bastion.catalog.cards import AnyCard, CardKind, card_from_dict
from bastion.catalog.records import Kind, Relation
from bastion.catalog.signing import Manifest
from bastion.errors import BastionError, UsageError
from bastion.findings import Finding

__all__ = [
    "NO_CARD",
    "card_edges",
    "card_sensitivity",
    "complete_card",
    "search_text",
    "validated_card",
    "walk_files",
]

NO_CARD: Final = "No card was supplied at registration."


def walk_files(path: Path) -> list[tuple[str, Path]]:
    """Files to register: a single file by its name, or every file under a directory.

    Symbolic links and special files are refused (fail closed): what is signed must be what is
    stored, and a link could point anywhere.
    """
    if path.is_symlink():
        raise UsageError(f"{path} is a symbolic link", hint="register the file it points at")
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise UsageError(f"{path} does not exist or is not a file or directory")
    found: list[tuple[str, Path]] = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for entry in (*dirs, *names):
            full = Path(root) / entry
            if full.is_symlink():
                raise UsageError(f"{full} is a symbolic link", hint="replace it with the file")
        for name in sorted(names):
            full = Path(root) / name
            if not full.is_file():
                raise UsageError(f"{full} is not a regular file")
            found.append((full.relative_to(path).as_posix(), full))
    if not found:
        raise UsageError(f"{path} holds no files", hint="register a file or a non-empty directory")
    return found


def validated_card(card: AnyCard | Mapping[str, Any] | None, kind: Kind) -> AnyCard | None:
    if card is None or not isinstance(card, Mapping):
        if card is not None and card.kind != kind.value:
            raise UsageError(f"a {card.kind} card cannot describe a {kind.value}")
        return card
    return card_from_dict(card, source="card", kind=CardKind(kind.value))


def card_edges(
    kind: Kind, card: AnyCard | None, edges: Mapping[Relation, Sequence[str]]
) -> dict[Relation, list[str]]:
    """Lineage from flags plus what the card already names: both must resolve."""
    merged = {rel: list(refs) for rel, refs in edges.items()}
    if card is not None and kind is Kind.MODEL:
        data = card.model_dump(mode="json")
        merged.setdefault(Relation.TRAINED_ON, []).extend(data.get("training_datasets") or [])
        merged.setdefault(Relation.EVALUATED_ON, []).extend(data.get("evaluation_datasets") or [])
        if data.get("parent_model"):
            merged.setdefault(Relation.DERIVED_FROM, []).append(data["parent_model"])
    return merged


def card_sensitivity(card: AnyCard | None) -> str | None:
    return card.sensitivity.value if card is not None and card.sensitivity else None


METRICS_MAX_BYTES: Final = 512 * 1024**2
"""Datasets larger than this are registered without computed metrics (memory stays bounded);
``bastion data profile`` computes them on demand."""


def dataset_metrics(path: Path) -> tuple[dict[str, Any] | None, str]:
    """Rows, features and label counts computed from the data itself, for the data card, and a
    note saying where they came from or why there are none.

    A directory holding ``X.npy`` and ``y.npy`` is read as that pair; anything else goes to
    ``bastion.data.load_dataset``. Data Bastion cannot read as a table, arrays or an image
    folder (a text corpus, say) is registered without metrics: they describe, they do not gate.
    """
    from bastion.data import load_dataset, profile_dataset

    size = (
        sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        if path.is_dir()
        else (path.stat().st_size)
    )
    if size > METRICS_MAX_BYTES:
        return None, f"not computed: {size} bytes is over {METRICS_MAX_BYTES}"
    try:
        if path.is_dir() and {p.name for p in path.iterdir()} == {"X.npy", "y.npy"}:
            dataset = load_dataset(path / "X.npy", labels_file=path / "y.npy")
        else:
            dataset = load_dataset(path)
        return profile_dataset(dataset).card_metrics(), "computed"
    except BastionError as exc:
        return None, f"not computed: {exc.message}"


def complete_card(
    kind: Kind,
    name: str,
    card: AnyCard | None,
    *,
    sensitivity: str,
    manifest: Manifest,
    key_id: str,
    now: str,
    parents: Mapping[Relation, Sequence[VersionRow]],
    gating: Sequence[Finding],
    accept_risk: str | None,
    actor: str,
    computed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stored card: what the author wrote plus what Bastion computed, validated again.

    ``computed`` holds the fields Bastion derived from the content itself (a model's
    ``environment``, a dataset's ``metrics``).
    """
    data: dict[str, Any] = (
        card.model_dump(mode="json", exclude_none=True)
        if card
        else {
            "kind": kind.value,
            "description": NO_CARD,
        }
    )
    data.update(name=name, sensitivity=sensitivity)
    if kind is Kind.MODEL:
        refs = {rel: sorted(p.ref for p in ps) for rel, ps in parents.items()}
        data["training_datasets"] = refs.get(Relation.TRAINED_ON, [])
        data["evaluation_datasets"] = refs.get(Relation.EVALUATED_ON, [])
        if refs.get(Relation.DERIVED_FROM):
            data["parent_model"] = refs[Relation.DERIVED_FROM][0]
    data.update(computed or {})
    data["integrity"] = {
        "manifest_sha256": manifest.digest,
        "files": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in manifest.files],
        "key_id": key_id,
        "signed_at": now,
    }
    if accept_risk is not None:
        data["accepted_risks"] = [
            {
                "reason": accept_risk,
                "by": actor,
                "at": now,
                "findings": sorted({f"{f.rule}: {f.title}"[:500] for f in gating}),
            }
        ]
    validated = card_from_dict(data, source=f"card of {name}", trusted=True)
    return validated.model_dump(mode="json", exclude_none=True)


def search_text(name: str, kind: Kind, sensitivity: str, card: Mapping[str, Any]) -> str:
    words = [name, kind.value, sensitivity, str(card.get("description", ""))]
    words.extend(str(tag) for tag in card.get("tags", ()))
    return " ".join(words).lower()[:4000]
