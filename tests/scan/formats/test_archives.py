"""Containers under attack: bombs, counts, traversal, links, encryption, lenient zips, fuzz."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.findings import Finding, Location, Severity
from bastion.scan import ScanLimits, scan
from bastion.scan.formats._io import member_source
from bastion.scan.formats.archives import (
    CompressedScanner,
    SevenZipScanner,
    TarScanner,
    ZipScanner,
)
from bastion.scan.interface import Budget, FormatScanner, Member, Source
from bastion.scan.pickle import Policy


def run(scanner: FormatScanner, data: bytes, limits: ScanLimits | None = None,
        budget: Budget | None = None) -> tuple[list[Finding], list[Member]]:
    source = Source(Location("x"), len(data), lambda: io.BytesIO(data),
                    budget=Budget() if budget is None else budget)
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
    assert {f.severity for f in findings} == {Severity.HIGH}  # refused under --fail-on high
    assert [m.name for m in members] == ["../outside.pkl"]


def _tar(*members: tuple[str, str | bytes]) -> bytes:
    """A tar of (name, content) files and (name, "->target") symbolic links, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content.removeprefix("->")
                t.addfile(info)
            else:
                info.size = len(content)
                t.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_a_file_written_through_a_link_member_is_high() -> None:
    """The link itself points inside the archive; the file after it is written through it
    (what let archives past Python's tarfile data filter, CVE-2025-4517)."""
    data = _tar(("cfg", b"{}"), ("d", "->cfg/.."), ("d/sub/x.pkl", pickle.dumps(1)))
    findings, _ = run(TarScanner(), data)
    through = [f for f in findings if f.rule == "archive.tar.through-link"]
    assert [(f.severity, f.evidence["member"], f.evidence["link"]) for f in through] == [
        (Severity.HIGH, "d/sub/x.pkl", "d")]


def test_links_that_stay_inside_and_are_not_written_through_are_clean() -> None:
    data = _tar(("weights/a.npy", b"\x93NUMPY"), ("latest", "->weights/a.npy"),
                ("config.json", b"{}"))
    findings, members = run(TarScanner(), data)
    assert findings == [] and [m.name for m in members] == ["weights/a.npy", "config.json"]


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


# -- one budget of decompressed bytes per top-level file, across nesting levels -------------

_MIB = 1 << 20


def _inner_zips(count: int, member_bytes: int = 3 * _MIB) -> dict[str, bytes]:
    """``count`` zips, each one member of zeros: ~3 KB packed, ``member_bytes`` unpacked."""
    return {f"inner{i}.zip": zipped({"big.bin": bytes(member_bytes)}, zipfile.ZIP_DEFLATED)
            for i in range(count)}


def _tar_gz(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


_NESTED = {
    "zip of zips": (lambda inner: zipped(inner, zipfile.ZIP_DEFLATED), ""),
    "tar.gz of zips": (_tar_gz, "(gzip)!"),
}


@pytest.mark.parametrize("kind", list(_NESTED))
def test_nested_bomb_is_stopped_by_the_budget_across_levels(tmp_path: Path, kind: str) -> None:
    # Every archive is far under every per-archive limit (the outer one declares ~12 KB, each
    # inner one 3 MiB of an 8 MiB budget); together they decompress 12 MiB.
    build, prefix = _NESTED[kind]
    path = tmp_path / "nested.bin"
    path.write_bytes(build(_inner_zips(4)))
    limits = ScanLimits(max_total_bytes=8 * _MIB)
    report = scan(path, limits=limits, workers=1)

    serious = [f for f in report.findings if f.severity >= Severity.MEDIUM]
    assert [(f.rule, f.severity, f.location) for f in serious] == [
        ("archive.bomb", Severity.HIGH, Location(str(path), f"{prefix}inner2.zip")),
    ]
    (bomb,) = serious
    assert bomb.evidence["member"] == "big.bin"
    assert bomb.evidence["limit"] == "total"
    assert bomb.evidence["max_total_bytes"] == 8 * _MIB
    assert 8 * _MIB < int(bomb.evidence["decompressed"]) <= 9 * _MIB + 64 * 1024
    assert "8388608 bytes" in bomb.title and "not scanned" in bomb.title
    # Scanning stopped there: the third inner member never came out, the fourth zip was
    # never opened, and nothing after the bomb was reported.
    members = [f.location.member for f in report.files]
    assert f"{prefix}inner1.zip!big.bin" in members
    assert f"{prefix}inner2.zip!big.bin" not in members
    assert not any(m and "inner3" in m for m in members)


@pytest.mark.parametrize("kind", list(_NESTED))
def test_benign_nested_archive_under_the_budget_is_scanned_whole(
    tmp_path: Path, kind: str
) -> None:
    build, prefix = _NESTED[kind]
    path = tmp_path / "nested.bin"
    path.write_bytes(build(_inner_zips(4)))
    report = scan(path, limits=ScanLimits(max_total_bytes=13 * _MIB), workers=1)
    assert [f for f in report.findings if f.severity >= Severity.MEDIUM] == []
    members = {f.location.member for f in report.files}
    assert {f"{prefix}inner{i}.zip!big.bin" for i in range(4)} <= members


def test_each_top_level_file_has_its_own_budget(tmp_path: Path) -> None:
    for i in range(3):  # 3 MiB each, 9 MiB in all, under a 4 MiB budget per file
        (tmp_path / f"{i}.zip").write_bytes(zipped({"big.bin": bytes(3 * _MIB)},
                                                   zipfile.ZIP_DEFLATED))
    report = scan(tmp_path, limits=ScanLimits(max_total_bytes=4 * _MIB), workers=1)
    assert [f.rule for f in report.findings if f.severity >= Severity.MEDIUM] == []


def test_the_budget_passes_only_beyond_the_limit() -> None:
    limits = ScanLimits(max_total_bytes=_MIB)
    budget = Budget()
    assert budget.spend(_MIB, limits) and not budget.exhausted(limits)  # the limit itself is in
    assert not budget.spend(1, limits) and budget.exhausted(limits)
    assert budget.spent == _MIB + 1


def test_limits_hold_no_state_and_members_share_the_files_budget() -> None:
    # The limits are configuration only: scanning under them changes nothing in them.
    limits = ScanLimits(max_total_bytes=_MIB)
    before = repr(limits)
    budget = Budget()
    run(CompressedScanner(), gzip.compress(b"x" * 1000), limits, budget)
    assert repr(limits) == before and limits == ScanLimits(max_total_bytes=_MIB)
    assert budget.spent == 1000
    # Every nesting level draws from the one tally of the top-level file.
    top = Source(Location("x"), 0, io.BytesIO, budget=budget)
    inner = member_source(member_source(top, "a", 0, io.BytesIO), "b", 0, io.BytesIO)
    assert inner.budget is budget and inner.depth == 2
    assert Source(Location("y"), 0, io.BytesIO).budget is not budget  # a new file: a new one


def test_a_spent_budget_decompresses_nothing_more() -> None:
    limits = ScanLimits(max_total_bytes=_MIB)
    budget = Budget()
    assert not budget.spend(_MIB + 1, limits) and budget.exhausted(limits)
    findings, members = run(ZipScanner(), zipped({"a.bin": bytes(1000)}, zipfile.ZIP_DEFLATED),
                            limits, budget)
    assert [(f.rule, f.evidence["member"], f.evidence["limit"]) for f in findings] == [
        ("archive.bomb", "a.bin", "total")
    ]
    assert members == [] and budget.spent == _MIB + 1  # not one more byte decompressed
    findings, members = run(CompressedScanner(), gzip.compress(b"x" * 1000), limits, budget)
    assert [(f.rule, f.evidence["member"]) for f in findings] == [("archive.bomb", "(gzip)")]
    assert members == [] and budget.spent == _MIB + 1


def test_stored_members_do_not_spend_the_budget() -> None:
    # A stored member is a window onto bytes already counted (or on disk): nothing multiplies.
    limits = ScanLimits(max_total_bytes=2000)
    budget = Budget()
    budget.spend(1500, limits)
    findings, members = run(ZipScanner(), zipped({"a.bin": bytes(900), "b.bin": bytes(900)}),
                            limits, budget)
    assert findings == [] and len(members) == 2 and budget.spent == 1500
    assert all(m.source.budget is budget for m in members)


def test_seven_zip_extraction_stops_when_the_budget_is_spent(tmp_path: Path) -> None:
    import py7zr

    path = tmp_path / "a.7z"
    with py7zr.SevenZipFile(path, "w") as z:
        for i in range(3):
            z.writestr(bytes(3 * _MIB), f"m{i}.bin")
    limits = ScanLimits(max_total_bytes=10 * _MIB)  # the 9 MiB declared pass the check
    budget = Budget()
    budget.spend(5 * _MIB, limits)  # what enclosing levels already decompressed
    source = Source(Location(str(path)), path.stat().st_size, lambda: path.open("rb"),
                    budget=budget)
    items = list(SevenZipScanner().scan(source, limits))
    assert [(f.rule, f.evidence["member"], f.evidence["limit"]) for f in items
            if isinstance(f, Finding)] == [("archive.bomb", "m1.bin", "total")]
    assert not any(isinstance(i, Member) for i in items)
    assert budget.spent == 11 * _MIB  # py7zr stopped at m1.bin: m2.bin never came out


def test_member_with_an_empty_name_is_scanned_not_a_crash() -> None:
    # Found by the fuzzer: ZipInfo.is_dir() raises IndexError on a zero-length name.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo(""), pickle.dumps(1))
    findings, members = run(ZipScanner(), buf.getvalue())
    assert findings == [] and [m.name for m in members] == [""]


def test_local_headers_read_the_same_from_a_file_and_from_memory(tmp_path: Path) -> None:
    """Real files are read with pread, anything else by seeking: the same checks either way
    (a renamed member, a name longer than the first read, a broken header, a cut-off member)."""
    long_name = "n" * 300 + ".pkl"
    data = bytearray(zipped({"a.pkl": b"x", long_name: b"y", "c.pkl": b"z", "d.pkl": b"w"}))
    at = data.index(b"a.pkl")  # the first copy is the local header's
    data[at:at + 5] = b"A.pkl"
    at = data.index(b"c.pkl") - 30
    data[at:at + 4] = b"XXXX"
    cd = bytes(data).rfind(b"PK\x01\x02")  # d.pkl's central entry, the last one
    data[cd + 20:cd + 24] = struct.pack("<I", 10**6)  # compressed size past the end
    path = tmp_path / "odd.zip"
    path.write_bytes(data)
    source = Source(Location("x"), len(data), lambda: path.open("rb"))
    from_file = list(ZipScanner().scan(source, ScanLimits()))
    from_memory = list(ZipScanner().scan(
        Source(Location("x"), len(data), lambda: io.BytesIO(bytes(data))), ScanLimits()))
    for items in (from_file, from_memory):
        rules = [i.rule for i in items if isinstance(i, Finding)]
        assert rules == ["archive.zip.name-mismatch", "archive.zip.bad-local-header",
                         "archive.zip.truncated"]
        assert [i.name for i in items if isinstance(i, Member)] == ["a.pkl", long_name]
    assert [i.evidence for i in from_file if isinstance(i, Finding)] == \
        [i.evidence for i in from_memory if isinstance(i, Finding)]


def test_only_a_checkpoints_own_storage_records_go_unread() -> None:
    """``<prefix>/data/<digits>`` holds raw tensor bytes that PyTorch never unpickles, so it
    is not opened; every other member is, names that only look like a record included (a
    trailing newline, other digits, another prefix, a nested folder)."""
    payload = pickle.dumps(print)  # any content: which members are handed on is the question
    names = ["a/data/0", "a/data/17", "a/data/0\n", "a/data/1x", "a/data/\u0661", "a/data/",
             "b/data/0", "a/data/0/data/1", "a/datax/0"]
    data = zipped({"a/data.pkl": pickle.dumps({"w": 1}), "a/version": b"3\n",
                   **dict.fromkeys(names, payload)})
    findings, members = run(ZipScanner(), data)
    assert not findings
    assert {m.name for m in members} == {"a/data.pkl", *names} - {"a/data/0", "a/data/17",
                                                                    "a/data/"}


@pytest.mark.parametrize(("length", "local"), [(5, "ab.pk"), (7, "ab.pklÇ")])
def test_a_local_name_that_only_shares_a_prefix_with_the_central_one_is_a_mismatch(
    length: int, local: str,
) -> None:
    data = bytearray(zipped({"ab.pkl": pickle.dumps(1)}))  # stored: content follows the name
    data[26:28] = struct.pack("<H", length)  # the local header's name length, nothing else
    findings, _ = run(ZipScanner(), bytes(data))
    assert [f.evidence for f in findings if f.rule == "archive.zip.name-mismatch"] == \
        [{"central": "ab.pkl", "local": local}]


def test_joblib_lzma_is_opened_and_its_pickle_judged(tmp_path: Path, canary: Path) -> None:
    """``joblib.dump(..., compress="lzma")`` writes LZMA-alone, which has no magic number: it
    was reported as an unknown format (info, exit 0) while joblib.load would run it."""
    import joblib

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(canary), "w"))

    joblib.dump(Payload(), tmp_path / "evil.joblib", compress="lzma")
    joblib.dump({"w": [0.5] * 64}, tmp_path / "ok.joblib", compress=("lzma", 9))
    evil = scan(tmp_path / "evil.joblib", workers=1)
    assert [f.format.value for f in evil.files] == ["lzma", "pickle"]
    assert max(f.severity for f in evil.findings) >= Severity.HIGH
    ok = scan(tmp_path / "ok.joblib", workers=1)
    assert ok.clean and [f.format.value for f in ok.files] == ["lzma", "pickle"]
    assert not canary.exists()


@pytest.mark.parametrize("data", [
    pickle.dumps([1, 2, 3], protocol=1),   # EMPTY_LIST is 0x5d, LZMA's usual props byte
    pickle.dumps([], protocol=0),
    b"\x5d" + bytes(range(1, 64)),          # the props byte and nothing else right
    b"\x5d\x00\x00\x80\x00" + b"\xff" * 8,  # a header with no data after it
])
def test_lzma_alone_is_not_claimed_on_a_props_byte_alone(data: bytes) -> None:
    from bastion.scan.sniff import is_lzma_alone, sniff_bytes

    assert not is_lzma_alone(data)
    assert sniff_bytes(data).value != "lzma"


def test_an_lz4_stream_that_cannot_be_opened_fails_closed(tmp_path: Path) -> None:
    """joblib's compress="lz4" writes an LZ4 frame; without the lz4 package here its content
    cannot be read, which is a high finding, never an unknown format passing at exit 0."""
    import importlib.util

    if importlib.util.find_spec("lz4") is not None:
        pytest.skip("lz4 is installed here: the frame is opened and scanned instead")
    path = tmp_path / "model.joblib"
    path.write_bytes(b"\x04\x22\x4d\x18\x64\x40\xa7" + b"\x00" * 32)
    report = scan(path, workers=1)
    assert [f.format.value for f in report.files] == ["lz4"]
    assert [(f.rule, f.severity) for f in report.findings] == [
        ("archive.compressed.unsupported", Severity.HIGH)]


# -- NeMo archives (.nemo): a tar whose model_config.yaml restore_from instantiates -------------

_NEMO_CONFIG = {  # the shape of an ASR model's config as NeMo 1.x/2.x saves it (abridged)
    "sample_rate": 16000,
    "target": "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE",
    "nemo_version": "1.23.0",
    "tokenizer": {"dir": None, "type": "bpe", "model_path": "nemo:6f1c_tokenizer.model"},
    "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
                     "sample_rate": 16000, "features": 80, "window_size": 0.025},
    "encoder": {"_target_": "nemo.collections.asr.modules.ConformerEncoder", "feat_in": 80,
                "n_layers": 2, "d_model": 64},
    "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": 64,
                "num_classes": 128},
    "optim": {"name": "adamw", "lr": 0.001, "sched": {"name": "CosineAnnealing"}},
    "spec_augment": {"target": 0.5},  # data that happens to be called target
}
_NEMO_REVIEWED = Policy.default().allowing([  # what a user who reviewed NeMo would allow
    "nemo.collections.asr.modules.*",
    "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE",
])


def _nemo(path: Path, config: dict[str, Any] | str, *, weights: object | None = None,
          mode: str = "w:") -> Path:
    """A .nemo written the way NeMo's SaveRestoreConnector writes one: a folder holding
    model_config.yaml (OmegaConf.save: YAML), model_weights.ckpt (torch.save of the state
    dict) and the tokenizer, added to a tar as "." (_make_nemo_file_from_folder)."""
    import torch
    import yaml

    folder = path.with_name(path.name + ".d")
    folder.mkdir()
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    (folder / "model_config.yaml").write_text(text)
    torch.save(weights if weights is not None else {"encoder.weight": torch.zeros(4, 4)},
               folder / "model_weights.ckpt")
    (folder / "6f1c_tokenizer.model").write_bytes(b"\x0a\x07\x0a\x03<s>\x15\x00\x00\x00\x00")
    with tarfile.open(path, mode) as tar:
        tar.add(folder, arcname=".")
    return path


def _targets(report: Any) -> dict[str, Severity]:
    return {f.evidence["target"]: f.severity for f in report.findings
            if f.rule == "config.target.unsafe"}


@pytest.mark.parametrize("mode", ["w:", "w:gz"])
def test_nemo_targets_are_judged_by_the_allowlist(tmp_path: Path, mode: str) -> None:
    """NeMo's classes are code nobody reviewed by default (high, as any unlisted _target_);
    allowed by a policy, the archive is clean. Recognised by content: no .nemo suffix."""
    path = _nemo(tmp_path / "asr_model.tar", _NEMO_CONFIG, mode=mode)
    assert _targets(scan(path, workers=1)) == {
        "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE": Severity.HIGH,
        "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor": Severity.HIGH,
        "nemo.collections.asr.modules.ConformerEncoder": Severity.HIGH,
        "nemo.collections.asr.modules.ConvASRDecoder": Severity.HIGH,
    }
    report = scan(path, workers=1, policy=_NEMO_REVIEWED)
    assert [f for f in report.findings if f.severity >= Severity.MEDIUM] == []
    formats = {f.location.member: f.format.value for f in report.files if f.location.member}
    weights = next(m for m in formats if m.endswith("model_weights.ckpt"))
    assert formats[weights] == "torch-zip"  # scanned as torch: its data.pkl as a pickle


@pytest.mark.parametrize(("name", "edit"), [
    ("hydra_target", lambda c: c["decoder"].update(
        {"_target_": "os.system", "command": "touch CANARY"})),
    ("nemo_target", lambda c: c.update({"target": "builtins.exec"})),
    ("nested_nemo_target", lambda c: c["preprocessor"].update(
        {"_target_": None, "target": "subprocess.Popen", "params": {"args": "touch CANARY"}})),
])
def test_nemo_config_running_code_on_restore(
    tmp_path: Path, canary: Path, name: str, edit: Any,
) -> None:
    import copy

    config = copy.deepcopy(_NEMO_CONFIG)
    edit(config)
    text = yaml_text(config).replace("CANARY", str(canary))
    report = scan(_nemo(tmp_path / f"{name}.nemo", text), workers=1, policy=_NEMO_REVIEWED)
    unsafe = [f for f in report.findings if f.rule == "config.target.unsafe"]
    assert [f.severity for f in unsafe] == [Severity.CRITICAL]
    assert unsafe[0].location is not None and unsafe[0].location.member == "./model_config.yaml"
    assert not canary.exists()


def yaml_text(config: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(config, sort_keys=False))


def test_nemo_target_past_the_sniffers_window_is_still_reviewed(
    tmp_path: Path, canary: Path,
) -> None:
    """The sniffer looks for _target_ in a file's first 64 KiB; NeMo instantiates the whole
    config, so a long vocabulary before the hook must not hide it."""
    padded = {"labels": [f"token_{i:06d}" for i in range(8000)], **_NEMO_CONFIG,
              "hook": {"_target_": "os.system", "command": f"touch {canary}"}}
    text = yaml_text(padded)
    assert text.index("_target_: os.system") > 65536
    report = scan(_nemo(tmp_path / "padded.nemo", text), workers=1, policy=_NEMO_REVIEWED)
    assert _targets(report) == {"os.system": Severity.CRITICAL}
    assert not canary.exists()


def test_nemo_weights_are_scanned_as_torch(tmp_path: Path, canary: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return os.system, (f"touch {canary}",)

    path = _nemo(tmp_path / "weights.nemo", _NEMO_CONFIG, weights={"w": Payload()})
    report = scan(path, workers=1, policy=_NEMO_REVIEWED)
    bad = [f for f in report.findings if f.severity is Severity.CRITICAL]
    assert bad and all(f.location is not None and "model_weights.ckpt" in
                       (f.location.member or "") for f in bad)
    assert not canary.exists()


def test_a_tar_without_a_root_model_config_is_not_nemo(tmp_path: Path) -> None:
    """Only a model_config.yaml at the archive's root is what restore_from reads; a config
    elsewhere with NeMo's `target` key and no _target_ is not instantiated by anyone."""
    data = _tar(("configs/model_config.yaml", b"target: os.system\n"),
                ("notes.yaml", b"target: builtins.exec\n"))
    path = tmp_path / "bundle.nemo"
    path.write_bytes(data)
    assert _targets(scan(path, workers=1)) == {}
