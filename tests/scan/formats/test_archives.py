"""Containers under attack: bombs, counts, traversal, links, encryption, lenient zips, fuzz."""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.findings import Finding, Location
from bastion.scan import ScanLimits, scan
from bastion.scan.formats.archives import (
    CompressedScanner,
    SevenZipScanner,
    TarScanner,
    ZipScanner,
)
from bastion.scan.interface import FormatScanner, Member, Source


def run(scanner: FormatScanner, data: bytes, limits: ScanLimits | None = None
        ) -> tuple[list[Finding], list[Member]]:
    source = Source(Location("x"), len(data), lambda: io.BytesIO(data))
    findings: list[Finding] = []
    members: list[Member] = []
    for item in scanner.scan(source, limits or ScanLimits()):
        (members if isinstance(item, Member) else findings).append(item)  # type: ignore[arg-type]
    return findings, members


def zipped(entries: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def test_zip_bomb_stops_at_the_ratio_limit(tmp_path: Path) -> None:
    data = zipped({"bomb.bin": bytes(200 << 20)}, zipfile.ZIP_DEFLATED)
    assert len(data) < 1 << 20
    findings, members = run(ZipScanner(), data)
    assert [f.rule for f in findings] == ["archive.bomb"]
    assert findings[0].evidence["limit"] == "ratio"
    assert members == []


def test_member_size_limit() -> None:
    data = zipped({"big.bin": bytes(3 << 20)}, zipfile.ZIP_DEFLATED)
    findings, _ = run(ZipScanner(), data, ScanLimits(max_member_bytes=1 << 20))
    assert [(f.rule, f.evidence["limit"]) for f in findings] == [("archive.bomb", "size")]


def test_declared_total_size_is_checked_before_decompressing() -> None:
    data = zipped({"a": b"x" * 1000, "b": b"y" * 1000})
    findings, members = run(ZipScanner(), data, ScanLimits(max_total_bytes=1500))
    assert [f.rule for f in findings] == ["archive.bomb"] and members == []


def test_member_count_limit() -> None:
    data = zipped({f"{i}.txt": b"x" for i in range(20)})
    findings, members = run(ZipScanner(), data, ScanLimits(max_members=5))
    assert [f.rule for f in findings] == ["archive.limit.members"]
    assert len(members) == 5


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_zip_traversal_and_duplicates() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../../etc/evil.pkl", pickle.dumps(1))
        z.writestr("same.pkl", b"a")
        z.writestr("same.pkl", b"b")
    findings, members = run(ZipScanner(), buf.getvalue())
    assert {f.rule for f in findings} == {"archive.path-traversal", "archive.zip.duplicate-name"}
    assert len(members) == 3  # both copies are scanned


def test_encrypted_member_is_a_finding() -> None:
    data = bytearray(zipped({"secret.pkl": b"data"}))
    # set the "encrypted" flag in the local and central headers
    data[6] |= 1
    cd = bytes(data).rfind(b"PK\x01\x02")
    data[cd + 8] |= 1
    findings, members = run(ZipScanner(), bytes(data))
    assert [f.rule for f in findings] == ["archive.zip.encrypted"] and members == []


def test_unreadable_zip_is_a_finding() -> None:
    findings, _ = run(ZipScanner(), b"PK\x03\x04" + bytes(40))
    assert [f.rule for f in findings] == ["archive.zip.unreadable"]


def test_members_beyond_the_file_are_reported() -> None:
    data = bytearray(zipped({"a.bin": b"x" * 100}))
    cd = bytes(data).rfind(b"PK\x01\x02")
    data[cd + 20:cd + 24] = struct.pack("<I", 10**6)  # compressed size
    data[cd + 24:cd + 28] = struct.pack("<I", 10**6)
    findings, _ = run(ZipScanner(), bytes(data))
    assert "archive.zip.truncated" in {f.rule for f in findings}


def test_tar_links_outside_and_traversal() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        link = tarfile.TarInfo("model/weights.pkl")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
        rel = tarfile.TarInfo("model/ok.pkl")
        rel.type, rel.linkname = tarfile.SYMTYPE, "weights.pkl"
        t.addfile(rel)
        evil = tarfile.TarInfo("../outside.pkl")
        data = pickle.dumps(1)
        evil.size = len(data)
        t.addfile(evil, io.BytesIO(data))
    findings, members = run(TarScanner(), buf.getvalue())
    assert sorted(f.rule for f in findings) == ["archive.link-outside", "archive.path-traversal"]
    assert [m.name for m in members] == ["../outside.pkl"]


def test_corrupt_gzip_keeps_what_came_before() -> None:
    import gzip

    data = gzip.compress(pickle.dumps(list(range(1000))))
    findings, members = run(CompressedScanner(), data[:-30])
    assert [f.rule for f in findings] == ["archive.compressed.corrupt"]
    assert len(members) == 1


def test_seven_zip_declared_sizes_are_checked(tmp_path: Path) -> None:
    import py7zr

    path = tmp_path / "a.7z"
    with py7zr.SevenZipFile(path, "w") as z:
        z.writestr(bytes(2 << 20), "zeros.bin")
    findings, members = run(SevenZipScanner(), path.read_bytes(),
                            ScanLimits(max_member_bytes=1 << 20))
    assert [f.rule for f in findings] == ["archive.bomb"] and members == []


def test_seven_zip_garbage_is_a_finding() -> None:
    findings, _ = run(SevenZipScanner(), b"7z\xbc\xaf\x27\x1c" + bytes(64))
    assert [f.rule for f in findings] == ["archive.7z.unreadable"]


_BASE_ZIP = zipped({"a/data.pkl": pickle.dumps({"w": [1.0]}), "a/data/0": bytes(64),
                    "b.npy": b"\x93NUMPY"}, zipfile.ZIP_DEFLATED)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_BASE_ZIP) - 1), st.integers(0, 255)), max_size=8))
def test_fuzz_mutated_zips_never_crash_the_engine(tmp_path_factory, mutations) -> None:
    data = bytearray(_BASE_ZIP)
    for pos, value in mutations:
        data[pos] = value
    root = tmp_path_factory.mktemp("fz")
    (root / "m.zip").write_bytes(bytes(data))
    report = scan(root, workers=1)  # every failure must come back as a finding
    assert all(f.rule != "scan.error" for f in report.findings), [
        f.title for f in report.findings if f.rule == "scan.error"]


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name in ("a/model.pkl", "a/b.txt"):
            data = pickle.dumps({"name": name})
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


_BASE_TAR = _tar_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 1535), st.integers(0, 255)), max_size=8))
def test_fuzz_mutated_tars_yield_findings_or_members(mutations) -> None:
    data = bytearray(_BASE_TAR)
    for pos, value in mutations:
        data[pos] = value
    findings, members = run(TarScanner(), bytes(data))
    assert all(isinstance(f, Finding) for f in findings)
    for m in members:  # every member yielded is readable within the archive
        with m.source.open() as stream:
            assert len(stream.read()) == m.source.size


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.sampled_from([b"\x1f\x8b", b"BZh9", b"\xfd7zXZ\x00", b"x\x9c"]))
def test_fuzz_compressed_streams_never_raise(tail: bytes, magic: bytes) -> None:
    findings, members = run(CompressedScanner(), magic + tail)
    assert all(isinstance(f, Finding) for f in findings)
    assert len(members) <= 1
