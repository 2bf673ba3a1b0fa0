"""The zip directory: read as ``zipfile`` reads it (real and damaged archives), and cached for
one file's sniff and scan, and nothing it should not."""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path
from typing import BinaryIO
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.scan._zipdir import forget_zip_directories, zip_directory
from bastion.scan.formats._io import window


def write_zip(path: Path, names: list[str]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.writestr(name, b"x")


def names(stream: BinaryIO) -> list[str]:
    return [i.filename for i in zip_directory(stream)]


def test_same_file_is_parsed_once(tmp_path: Path) -> None:
    forget_zip_directories()
    path = tmp_path / "a.zip"
    write_zip(path, ["a.pkl", "b.pkl"])
    with path.open("rb") as one, path.open("rb") as two:
        assert zip_directory(one) is zip_directory(two)


def test_a_changed_file_is_parsed_again(tmp_path: Path) -> None:
    forget_zip_directories()
    path = tmp_path / "a.zip"
    write_zip(path, ["a.pkl", "b.pkl"])
    with path.open("rb") as f:
        assert names(f) == ["a.pkl", "b.pkl"]
    write_zip(path, ["a.pkl", "c.pkl"])  # same size: only the times tell them apart
    os.utime(path, ns=(1, 1))
    with path.open("rb") as f:
        assert names(f) == ["a.pkl", "c.pkl"]


def test_other_paths_and_forget(tmp_path: Path) -> None:
    forget_zip_directories()
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    write_zip(first, ["a.pkl"])
    write_zip(second, ["b.pkl"])
    with first.open("rb") as f:
        cached = zip_directory(f)
    with second.open("rb") as f:
        assert names(f) == ["b.pkl"]
    forget_zip_directories()
    with first.open("rb") as f:
        assert zip_directory(f) is not cached


def test_windows_and_memory_are_never_cached(tmp_path: Path) -> None:
    forget_zip_directories()
    path = tmp_path / "outer.bin"
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("m.pkl", b"x")
    path.write_bytes(b"\0" * 100 + inner.getvalue())
    opener = window(lambda: path.open("rb"), 100, len(inner.getvalue()))
    with opener() as one, opener() as two:
        assert zip_directory(one) is not zip_directory(two)
    assert zip_directory(io.BytesIO(inner.getvalue())) is not zip_directory(
        io.BytesIO(inner.getvalue()))


# -- the same entries as zipfile ----------------------------------------------------------------
class _DiskLike(io.BytesIO):
    """Bytes that seek as a file on disk does: before the start is an OSError. (BytesIO stops
    at 0 instead, so zipfile reads a Zip64 locator overlapping the end record of a short
    archive that it skips when the same bytes are a file: ``PK\\x06\\x07PK\\x05\\x06...``.)"""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell()}.get(whence, len(self.getbuffer()))
        if base + offset < 0:
            raise OSError(22, "Invalid argument")
        return super().seek(offset, whence)


def zipfile_entries(data: bytes) -> list[tuple[object, ...]] | type[BaseException]:
    try:
        infos = zipfile.ZipFile(_DiskLike(data)).infolist()
    except Exception as exc:
        return type(exc)
    return [(i.filename, i.orig_filename, i.flag_bits, i.compress_type, i.CRC, i.compress_size,
             i.file_size, i.header_offset) for i in infos]


def our_entries(data: bytes) -> list[tuple[object, ...]] | type[BaseException]:
    try:
        entries = zip_directory(io.BytesIO(data))
    except Exception as exc:
        return type(exc)
    for e in entries:  # the bytes behind the name, kept to compare with local headers
        assert e.raw_name.decode("utf-8" if e.flag_bits & 0x800 else "cp437") == e.orig_filename
    return [tuple(e)[:-1] for e in entries]


_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12) | \
    st.sampled_from(["../up.pkl", "archive/data.pkl", "dir/"])


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    """Zips as zipfile writes them: any names, methods, comments, Zip64 records (per member,
    and the end records of a big archive), and data prepended to the archive (a stub)."""
    out = io.BytesIO()
    big = 0 if draw(st.booleans()) else zipfile.ZIP_FILECOUNT_LIMIT  # 0: Zip64 end records
    with mock.patch.object(zipfile, "ZIP_FILECOUNT_LIMIT", big), warnings.catch_warnings(), \
            zipfile.ZipFile(out, "w") as z:
        warnings.simplefilter("ignore")  # duplicate names are wanted here
        for name in draw(st.lists(_names, max_size=6)):
            method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            with z.open(info, "w", force_zip64=draw(st.booleans())) as member:
                member.write(draw(st.binary(max_size=64)))
        z.comment = draw(st.binary(max_size=40))
    return draw(st.binary(max_size=30)) + out.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archives())
def test_entries_are_zipfiles(data: bytes) -> None:
    assert our_entries(data) == zipfile_entries(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archives(), st.data())
def test_damaged_archives_fail_or_agree_as_zipfile_does(data: bytes, draw: st.DataObject) -> None:
    """Flipped bytes and cut tails: the same entries, or the same kind of error."""
    damaged = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        at = draw.draw(st.integers(0, len(damaged) - 1))
        damaged[at] = draw.draw(st.integers(0, 255))
    cut = draw.draw(st.integers(0, len(damaged)))
    for sample in (bytes(damaged), data[:cut], bytes(damaged[-cut:])):
        assert our_entries(sample) == zipfile_entries(sample)


def test_real_checkpoints_and_archives(tmp_path: Path) -> None:
    torch.save({"w": torch.zeros(3), "b": torch.ones(2)}, tmp_path / "model.pt")
    np.savez(tmp_path / "arrays.npz", a=np.arange(3), b=np.zeros(2))
    for path in (tmp_path / "model.pt", tmp_path / "arrays.npz"):
        data = path.read_bytes()
        entries = our_entries(data)
        assert isinstance(entries, list) and len(entries) >= 2
        assert entries == zipfile_entries(data)


def test_names_end_at_a_nul_as_zipfile_reads_them() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("evil.pkl", b"x")
    data = out.getvalue().replace(b"evil.pkl", b"e\0il.pkl")  # zipfile never writes a NUL
    (entry,) = zip_directory(io.BytesIO(data))
    assert (entry.filename, entry.orig_filename) == ("e", "e\0il.pkl")
    assert our_entries(data) == zipfile_entries(data)


def test_a_directory_claiming_more_than_64_mib_is_refused_unread(tmp_path: Path) -> None:
    """zipfile would read whatever the end record claims (all of a crafted 2 GB file)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.pkl", b"x")
    data = bytearray(out.getvalue())
    end = data.rfind(b"PK\x05\x06")
    hole = 65 << 20
    data[end + 12:end + 16] = (hole + end).to_bytes(4, "little")  # from the file's first byte
    data[end + 16:end + 20] = (0).to_bytes(4, "little")
    path = tmp_path / "claims.zip"
    with path.open("wb") as f:  # sparse: the 65 MiB in front take no disk
        f.seek(hole)
        f.write(data)
    with CountingFile(path) as stream:
        with pytest.raises(zipfile.BadZipFile, match=f"claims {hole + end} bytes"):
            zip_directory(stream)
        assert stream.largest < 1 << 17  # only the end records were read


class CountingFile(io.FileIO):
    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")
        self.largest = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n) or b""
        self.largest = max(self.largest, len(data))
        return data
