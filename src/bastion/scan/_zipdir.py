"""A zip's central directory, parsed once per file: sniffing and scanning both need it.

Parsing the directory of a checkpoint with a thousand tensors costs milliseconds, about as much
as interpreting its pickle, so the last directory read from a real file is kept for the next
reader of the same file (same path, device, inode, size and change times) while it is scanned.
Windows onto a parent, in-memory blobs and anything else are parsed every time.
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import BinaryIO

__all__ = ["forget_zip_directories", "zip_directory"]

_LAST: dict[tuple[object, ...], list[zipfile.ZipInfo]] = {}
"""The last directory read from a real file (one entry), by file identity."""


def zip_directory(stream: BinaryIO) -> list[zipfile.ZipInfo]:
    """The members ``zipfile`` lists for ``stream``; raises what ``zipfile`` raises."""
    key = _identity(stream)
    if key is not None and key in _LAST:
        return _LAST[key]
    stream.seek(0)
    infos = zipfile.ZipFile(stream).infolist()
    if key is not None:
        _LAST.clear()
        _LAST[key] = infos
    return infos


def forget_zip_directories() -> None:
    """Drop the kept directory (the engine calls this per top-level file, so the cache only
    ever serves the sniffing and scanning of one file)."""
    _LAST.clear()


def _identity(stream: BinaryIO) -> tuple[object, ...] | None:
    """The file's path and identity. The path matters: a temporary file that a nested archive
    was decompressed into may reuse a deleted one's inode, size and (coarse) times."""
    raw = getattr(stream, "raw", None)
    if not isinstance(raw, io.FileIO) or not isinstance(raw.name, str):
        return None
    st = os.fstat(raw.fileno())
    return (raw.name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
