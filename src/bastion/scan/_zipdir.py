"""A zip's central directory, parsed once per file: sniffing and scanning both need it.

The directory is read the way :mod:`zipfile` reads it (the same end-record search, Zip64
records, prepended-data offset, name decoding and NUL truncation, and the same errors; unlike
it, never more than 64 MiB of directory), into plain tuples: a checkpoint with a thousand
tensors has a thousand entries, and building a ``ZipInfo`` for each costs about as much as
interpreting the checkpoint's pickle. A test compares the two readers on generated and damaged
archives.

The last directory read from a real file is kept for the next reader of the same file (same
path, device, inode, size and change times) while it is scanned. Windows onto a parent,
in-memory blobs and anything else are parsed every time.
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO, Final, NamedTuple
from zipfile import BadZipFile

__all__ = ["ZipEntry", "forget_zip_directories", "torch_pickle", "zip_directory"]

_END: Final = struct.Struct("<4s4H2LH")
_END64: Final = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64: Final = struct.Struct("<4sLQL")
_CENTRAL: Final = struct.Struct("<4s2xBx2H4x3L3H8xL")
"""A central-directory header (46 bytes), the fields read: signature, version needed, flags,
method, CRC, sizes, name, extra and comment lengths, local header offset."""
_EXTRA: Final = struct.Struct("<HH")
_U64: Final = struct.Struct("<Q")
_MAX_VERSION: Final = 63
"""The highest "version needed to extract" :mod:`zipfile` accepts."""
_MAX_COMMENT: Final = 1 << 16
_MAX_DIRECTORY: Final = 64 << 20
"""The largest central directory read (100,000 members with 600-byte names): ``zipfile`` reads
whatever size the end record declares, all of a crafted 2 GB file included."""


class ZipEntry(NamedTuple):
    """One central-directory entry (the fields of ``zipfile.ZipInfo`` the scanners use)."""

    filename: str
    """The name up to its first NUL, as ``zipfile`` names the member."""
    orig_filename: str
    """The name as written."""
    flag_bits: int
    compress_type: int
    crc: int
    compress_size: int
    file_size: int
    header_offset: int
    """Where the local header is, corrected for data prepended to the archive."""
    raw_name: bytes
    """The name's bytes as written (a local header that repeats them names the same file)."""


_LAST: dict[tuple[object, ...], list[ZipEntry]] = {}
"""The last directory read from a real file (one entry), by file identity."""


def zip_directory(stream: BinaryIO) -> list[ZipEntry]:
    """The members ``zipfile`` lists for ``stream``; raises what ``zipfile`` raises."""
    key = _identity(stream)
    if key is not None and key in _LAST:
        return _LAST[key]
    entries = _read(stream)
    if key is not None:
        _LAST.clear()
        _LAST[key] = entries
    return entries


def torch_pickle(name: str) -> bool:
    """Whether ``name`` is ``<prefix>/data.pkl``, the pickle of a PyTorch zip checkpoint."""
    return name.endswith("/data.pkl") and len(name) > 9 and "/" not in name[:-9]


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


def _read(stream: BinaryIO) -> list[ZipEntry]:
    start, size, shift = _directory(stream)
    if size > _MAX_DIRECTORY:
        raise BadZipFile(f"the central directory claims {size} bytes, more than the "
                         f"{_MAX_DIRECTORY >> 20} MiB a scan reads")
    stream.seek(start)
    data = stream.read(size)
    entries: list[ZipEntry] = []
    central, n = _CENTRAL.unpack_from, _CENTRAL.size
    new = tuple.__new__  # without ZipEntry's own __new__, a Python function
    total = 0
    while total < size:
        if total + n > len(data):
            raise BadZipFile("Truncated central directory")
        (signature, version, flags, method, crc, compressed, file_size, name_len, extra_len,
         comment_len, offset) = central(data, total)
        if signature != b"PK\x01\x02":
            raise BadZipFile("Bad magic number for central directory")
        at = total + n
        raw = data[at:at + name_len]
        name = raw.decode("utf-8" if flags & 0x800 else "cp437")
        if version > _MAX_VERSION:
            raise NotImplementedError(f"zip file version {version / 10:.1f}")
        if extra_len:
            extra = data[at + name_len:at + name_len + extra_len]
            file_size, compressed, offset = _zip64(extra, file_size, compressed, offset)
        nul = name.find("\0")
        entries.append(new(ZipEntry, (name if nul < 0 else name[:nul], name, flags, method, crc,
                                      compressed, file_size, offset + shift, raw)))
        total = at + name_len + extra_len + comment_len
    return entries


def _directory(stream: BinaryIO) -> tuple[int, int, int]:
    """The central directory's offset and size, and how far the archive was shifted by data
    prepended to it (``zipfile``'s "concat")."""
    stream.seek(0, 2)
    file_size = stream.tell()
    if file_size < _END.size:
        raise BadZipFile("File is not a zip file")
    stream.seek(file_size - _END.size)
    end = stream.read()
    found = file_size - _END.size
    if end[:4] != b"PK\x05\x06" or end[-2:] != b"\0\0":  # not a comment-less end record
        search = max(file_size - _MAX_COMMENT - _END.size, 0)
        stream.seek(search)
        tail = stream.read()
        i = tail.rfind(b"PK\x05\x06")
        end = tail[i:i + _END.size]
        if i < 0 or len(end) != _END.size:
            raise BadZipFile("File is not a zip file")
        found = search + i
    *_, size, offset, _ = _END.unpack(end)
    located = found
    z64 = _zip64_end(stream, found)
    if z64 is not None:
        size, offset = z64
        located -= _END64.size + _LOCATOR64.size
    start = located - size
    if start < 0:
        raise BadZipFile("Bad offset for central directory")
    return start, size, start - offset


def _zip64_end(stream: BinaryIO, found: int) -> tuple[int, int] | None:
    """The Zip64 end record's directory size and offset, when the archive has one."""
    if found < _LOCATOR64.size:
        return None
    stream.seek(found - _LOCATOR64.size)
    locator = stream.read(_LOCATOR64.size)
    if len(locator) != _LOCATOR64.size:
        return None
    signature, disk, _, disks = _LOCATOR64.unpack(locator)
    if signature != b"PK\x06\x07":
        return None
    if disk != 0 or disks > 1:
        raise BadZipFile("zipfiles that span multiple disks are not supported")
    at = found - _LOCATOR64.size - _END64.size
    if at < 0:
        raise BadZipFile("File is not a zip file")
    stream.seek(at)
    record = stream.read(_END64.size)
    if len(record) != _END64.size:
        return None
    signature, *_, size, offset = _END64.unpack(record)
    if signature != b"PK\x06\x06":
        return None
    return size, offset


def _zip64(extra: bytes, file_size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """Sizes and offset after the extra fields' Zip64 records (``ZipInfo._decodeExtra``)."""
    while len(extra) >= 4:
        kind, n = _EXTRA.unpack_from(extra)
        if n + 4 > len(extra):
            raise BadZipFile(f"Corrupt extra field {kind:04x} (size={n})")
        if kind == 1:
            data = extra[4:n + 4]
            field = ""
            try:
                if file_size in (0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF):
                    field = "File size"
                    (file_size,) = _U64.unpack(data[:8])
                    data = data[8:]
                if compressed == 0xFFFF_FFFF:
                    field = "Compress size"
                    (compressed,) = _U64.unpack(data[:8])
                    data = data[8:]
                if offset == 0xFFFF_FFFF:
                    field = "Header offset"
                    (offset,) = _U64.unpack(data[:8])
            except struct.error:
                raise BadZipFile(f"Corrupt zip64 extra field. {field} not found.") from None
        extra = extra[n + 4:]
    return file_size, compressed, offset
