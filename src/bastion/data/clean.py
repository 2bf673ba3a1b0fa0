"""Write a cleaned copy of a dataset, recording what was removed and why.

The source is never modified. A plain file gets ``<name>.lineage.json`` beside it: the source
and its SHA-256, the output's SHA-256, the removed rows, the detector and the reason. Registering
the copy as a catalog version is the catalog's side (``bastion.catalog.cleaned``), which keeps
the same record as lineage, in the card and in a ``dataset.clean`` audit entry.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion._fs import atomic_write
from bastion.data.interface import DataError, Dataset

__all__ = ["CleanedDataset", "content_digest", "rows_digest", "write_cleaned", "write_copy"]



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
        # an array file's samples go back in its own shape and layout (NCHW stays NCHW)
        features = (dataset.frame.to_numpy().reshape(len(dataset), *dataset.shape)
                    if dataset.shape is not None
                    else dataset.pixels if dataset.pixels is not None else dataset.matrix)
        arrays: dict[str, npt.NDArray[Any]] = {"X": features}
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



def write_copy(dataset: Dataset, remove: npt.NDArray[np.int64], output: Path, *, detector: str,
               reason: str) -> dict[str, Any]:
    """Write ``dataset`` without the rows ``remove`` to ``output`` (atomically); return the
    record of what was removed and why: source and output digests, the rows, detector, reason."""
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
    record = write_copy(dataset, remove, output, detector=detector, reason=reason)
    record["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    lineage = output.with_name(output.name + ".lineage.json")
    atomic_write(lineage, json.dumps(record, indent=2).encode("utf-8"))
    return CleanedDataset(output, lineage, record["kept"], len(record["removed_rows"]))
