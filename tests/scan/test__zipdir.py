"""The zip directory cache serves one file's sniff and scan, and nothing it should not."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import BinaryIO

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
