"""Registering a cleaned copy of a dataset as a new version: what was removed, and why, kept as
lineage (``derived_from`` the source version), in the card, and in a ``dataset.clean`` audit
entry written in the registration's transaction, on a local workspace or through a server::

    info = register_cleaned(catalog, dataset, report.suspicious, Path("clean.csv"),
                            name="digits", detector="data poisoning (trigger)",
                            reason="rows flagged as possibly poisoned", derived_from="digits@1")
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bastion.catalog.api import CatalogAPI
from bastion.catalog.cards import COMPUTED_FIELDS
from bastion.catalog.records import Kind, VersionInfo
from bastion.data.clean import write_copy

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from bastion.data.interface import Dataset

__all__ = ["register_cleaned"]

_LISTED_ROWS: Final = 1000  # a card lists at most this many removed rows; the digest covers all


def register_cleaned(
    catalog: CatalogAPI,
    dataset: Dataset,
    remove: npt.NDArray[np.int64],
    output: Path,
    *,
    name: str,
    detector: str,
    reason: str,
    derived_from: str | None = None,
) -> VersionInfo:
    """Write ``dataset`` without the rows ``remove`` to ``output`` and register it as a new
    version of dataset ``name``.

    Args:
        derived_from: the registered version ``dataset`` was read from (``NAME@N``); it becomes
            the new version's ``derived_from`` lineage and lends it its card (licence, owner
            contacts, retention…, less what Bastion computes).
    """
    parent = catalog.show(derived_from) if derived_from else None  # unknown: fails before writing
    facts = write_copy(dataset, remove, output, detector=detector, reason=reason)
    if parent is not None:
        facts.update(source=parent.summary.ref, source_sha256=parent.summary.digest)
    return catalog.add(
        Kind.DATASET, name, output, card=_cleaned_card(parent, facts),
        derived_from=parent.summary.ref if parent else None, derivation=facts,
    )


def _cleaned_card(parent: VersionInfo | None, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The source's card (if registered) with the removal and its reason written in."""
    card = {
        k: v for k, v in (parent.card if parent else {}).items()
        if k not in COMPUTED_FIELDS and k != "name"
    }
    rows: list[int] = facts["removed_rows"]
    listed = (", ".join(map(str, rows)) if len(rows) <= _LISTED_ROWS
              else f"{len(rows)} rows, listed in the dataset.clean audit entry")
    summary = (f"{facts['source']} without {len(rows)} rows flagged by {facts['detector']}: "
               f"{facts['reason']}.")
    note = (f"Cleaned by Bastion from {facts['source']} (digest {facts['source_sha256']}): "
            f"{len(rows)} rows removed by {facts['detector']}, {facts['kept']} kept; reason: "
            f"{facts['reason']}. Removed rows (0-based, in the source's order): {listed}. "
            f"SHA-256 of the sorted removed rows joined by commas: "
            f"{facts['removed_rows_sha256']}.")
    before = f"The source's description: {card['description']}" if "description" in card else ""
    card.update(
        kind="dataset",
        description="\n\n".join(filter(None, [summary, before])),
        collection="\n\n".join(filter(None, [card.get("collection"), note])),
        tags=sorted({*card.get("tags", ()), "cleaned"}),
    )
    return card
