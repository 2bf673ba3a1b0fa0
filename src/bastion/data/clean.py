"""Write a cleaned copy of a dataset, recording what was removed and why.

The source is never modified. A plain file gets ``<name>.lineage.json`` beside it: the source
and its SHA-256, the output's SHA-256, the removed rows, the detector and the reason. A cleaned
copy registered in the catalog carries the same record as lineage (``derived_from`` the source
version), in its card, and in a ``dataset.clean`` audit entry about the new version.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from bastion._fs import atomic_write
from bastion.data.interface import DataError, Dataset

if TYPE_CHECKING:
    from bastion.catalog.records import VersionInfo

__all__ = ["CleanedDataset", "DatasetRegistry", "content_digest", "register_cleaned",
           "rows_digest", "write_cleaned"]

_LISTED_ROWS: Final = 1000  # a card lists at most this many removed rows; the digest covers all
_COMPUTED: Final = ("name", "integrity", "accepted_risks", "metrics")  # Bastion fills these in


class DatasetRegistry(Protocol):
    """What :func:`register_cleaned` needs of a catalog (local ``Catalog`` or a server's)."""

    def show(self, ref: str) -> VersionInfo: ...

    def add_dataset(self, name: str, path: Path, *, card: Mapping[str, Any] | None = None,
                    derived_from: str | None = None) -> VersionInfo: ...


def content_digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def rows_digest(rows: list[int]) -> str:
    """SHA-256 of the sorted row indices written in decimal and joined by commas ("3,17,42"),
    so anyone can check a removal against its record by hand."""
    return hashlib.sha256(",".join(str(r) for r in sorted(rows)).encode()).hexdigest()


@dataclass(frozen=True)
class CleanedDataset:
    """Where the cleaned data and its lineage record went."""

    path: Path
    """The cleaned dataset."""
    lineage: Path
    """The lineage record (JSON)."""
    kept: int
    """Samples kept."""
    removed: int
    """Samples removed."""


def _encode(dataset: Dataset, output: Path) -> bytes:
    buffer = io.BytesIO()
    suffix = output.suffix.lower()
    if dataset.pixels is not None or dataset.kind.value == "array" or suffix == ".npz":
        if suffix != ".npz":
            raise DataError(f"{output}: array and image data are written as .npz",
                            hint="name the output file *.npz")
        arrays: dict[str, npt.NDArray[Any]] = {
            "X": dataset.pixels if dataset.pixels is not None else dataset.matrix}
        if dataset.labels is not None:
            arrays["y"] = dataset.labels
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()
    frame = dataset.frame.copy()
    if dataset.labels is not None:
        frame[dataset.label_name or "label"] = dataset.labels  # the label column goes back
    if suffix == ".parquet":
        frame.to_parquet(buffer, index=False)
    elif suffix == ".csv":
        frame.to_csv(buffer, index=False)
    else:
        raise DataError(f"{output}: unknown output format", hint="use .csv, .parquet or .npz")
    return buffer.getvalue()



def _write(dataset: Dataset, remove: npt.NDArray[np.int64], output: Path, *, detector: str,
           reason: str) -> dict[str, Any]:
    """Write the cleaned copy; return the record of what was removed and why."""
    if output.resolve() == Path(dataset.source).resolve():
        raise DataError("the cleaned dataset must not overwrite its source",
                        hint="choose another output path")
    keep = np.ones(len(dataset), dtype=bool)
    keep[remove] = False
    data = _encode(dataset.subset(keep, source=str(output)), output)
    atomic_write(output, data)
    source = Path(dataset.source)
    rows = sorted(int(r) for r in remove)
    return {
        "source": dataset.source,
        "source_sha256": content_digest(source) if source.exists() else None,
        "output": str(output),
        "output_sha256": hashlib.sha256(data).hexdigest(),
        "removed_rows": rows,
        "removed_rows_sha256": rows_digest(rows),
        "kept": int(keep.sum()),
        "detector": detector,
        "reason": reason,
    }


def write_cleaned(
    dataset: Dataset,
    remove: npt.NDArray[np.int64],
    output: Path,
    *,
    detector: str,
    reason: str,
) -> CleanedDataset:
    """Write ``dataset`` without the rows ``remove`` to ``output``, then its lineage record."""
    record = _write(dataset, remove, output, detector=detector, reason=reason)
    record["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    lineage = output.with_name(output.name + ".lineage.json")
    atomic_write(lineage, json.dumps(record, indent=2).encode("utf-8"))
    return CleanedDataset(output, lineage, record["kept"], len(record["removed_rows"]))


def register_cleaned(
    catalog: DatasetRegistry,
    dataset: Dataset,
    remove: npt.NDArray[np.int64],
    output: Path,
    *,
    name: str,
    detector: str,
    reason: str,
    derived_from: str | None = None,
    record: Callable[..., None] | None = None,
) -> VersionInfo:
    """Write ``dataset`` without the rows ``remove`` to ``output`` and register it as a new
    version of dataset ``name``.

    Args:
        derived_from: the registered version ``dataset`` was read from (``NAME@N``); it becomes
            the new version's ``derived_from`` lineage and lends it its card (licence, owner
            contacts, retention…, less what Bastion computes).
        record: ``Workspace.record``, to append a ``dataset.clean`` audit entry about the new
            version with the whole record (detector, reason, every removed row). A catalog
            server writes only its ``dataset.add`` entry, which binds the card (and so the
            reason) by its SHA-256.
    """
    parent = catalog.show(derived_from) if derived_from else None  # unknown: fails before writing
    facts = _write(dataset, remove, output, detector=detector, reason=reason)
    if parent is not None:
        facts.update(source=parent.summary.ref, source_sha256=parent.summary.digest)
    info = catalog.add_dataset(name, output, card=_cleaned_card(parent, facts),
                               derived_from=parent.summary.ref if parent else None)
    if record is not None:
        record("dataset.clean", info.summary.ref, digest=info.summary.digest, **facts)
    return info


def _cleaned_card(parent: VersionInfo | None, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The source's card (if registered) with the removal and its reason written in."""
    card = {k: v for k, v in (parent.card if parent else {}).items() if k not in _COMPUTED}
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
