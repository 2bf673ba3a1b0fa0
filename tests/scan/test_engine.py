"""The engine over the whole corpus, and its own rules: walking, symlinks, digests, parallelism."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import time
from pathlib import Path

import pytest
from tests.scan.conftest import ScannedCorpus
from tests.scan.corpus import BENIGN, MALICIOUS, Case

from bastion.findings import Severity
from bastion.scan import Format, ScanError, ScanLimits, scan


def _findings_for(corpus: ScannedCorpus, case: Case) -> list:
    return [f for f in corpus.report.findings
            if f.location and Path(f.location.path).name == case.name]


@pytest.mark.parametrize("case", BENIGN, ids=lambda c: c.name)
def test_benign_files_have_no_finding_at_medium_or_above(
    scanned_corpus: ScannedCorpus, case: Case
) -> None:
    serious = [(f.rule, f.title) for f in _findings_for(scanned_corpus, case)
               if f.severity >= Severity.MEDIUM]
    assert serious == []


@pytest.mark.parametrize("case", MALICIOUS, ids=lambda c: c.name)
def test_malicious_files_produce_the_exact_finding(
    scanned_corpus: ScannedCorpus, case: Case
) -> None:
    found = _findings_for(scanned_corpus, case)
    matching = [f for f in found if f.rule == case.rule
                and all(f.evidence.get(k) == v for k, v in case.evidence.items())]
    assert matching, [(f.rule, dict(f.evidence)) for f in found]
    assert matching[0].severity >= Severity.MEDIUM
    assert matching[0].principle.number == "2.2"
    assert "AML.T0010.003" in matching[0].techniques
    assert not scanned_corpus.canary.exists()


def test_every_malicious_file_fails_the_default_gate(scanned_corpus: ScannedCorpus) -> None:
    for case in MALICIOUS:
        worst = max(f.severity for f in _findings_for(scanned_corpus, case))
        assert worst >= Severity.HIGH, case.name
    assert not scanned_corpus.canary.exists()


def test_formats_are_sniffed_by_content_whatever_the_name(scanned_corpus: ScannedCorpus) -> None:
    top = {Path(f.location.path).name: f.format for f in scanned_corpus.report.files
           if f.location.member is None}
    assert top["os_system_p5.bin"] is Format.PICKLE
    assert top["torch_state_dict.pt"] is Format.TORCH_ZIP
    assert top["torch_legacy_state_dict.pt"] is Format.TORCH_LEGACY
    assert top["sklearn_compressed.joblib"] is Format.ZLIB
    assert top["bz2_pickle.bin"] is Format.BZIP2
    assert top["numpy_arrays.npz"] is Format.NUMPY_NPZ
    assert top["README.txt"] is Format.UNKNOWN


def test_member_locations_chain_through_nested_archives(scanned_corpus: ScannedCorpus) -> None:
    nested = [f for f in scanned_corpus.report.findings
              if f.location and f.location.path.endswith("nested_archives.tar.gz")
              and f.rule == "pickle.global.dangerous"]
    assert nested[0].location.member == "(gzip)!bundle/models.zip!model/weights.bin"
    assert nested[0].location.offset is not None


def test_top_level_files_carry_their_sha256(scanned_corpus: ScannedCorpus) -> None:
    for f in scanned_corpus.report.files:
        if f.location.member is None:
            expected = hashlib.sha256(Path(f.location.path).read_bytes()).hexdigest()
            assert f.sha256 == expected
        else:
            assert f.sha256 is None


def test_unknown_files_are_reported_as_info_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("hello")
    report = scan(tmp_path, workers=1)
    assert [(f.rule, f.severity) for f in report.findings] == [
        ("scan.format.unknown", Severity.INFO)
    ]
    assert report.clean


def test_symlink_pointing_outside_the_root_is_a_finding(tmp_path: Path) -> None:
    outside = tmp_path / "outside.pkl"
    outside.write_bytes(pickle.dumps([1]))
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.pkl").symlink_to(outside)
    (root / "inside.pkl").symlink_to(root / "real.pkl")
    (root / "real.pkl").write_bytes(pickle.dumps([2]))
    report = scan(root, workers=1)
    rules = [(f.rule, Path(f.location.path).name) for f in report.findings]
    assert ("scan.symlink.outside-root", "weights.pkl") in rules
    assert all(name != "inside.pkl" for _, name in rules)
    assert [Path(f.location.path).name for f in report.files] == ["real.pkl"]


def test_fifo_is_reported_and_never_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    report = scan(tmp_path, workers=1)
    assert [f.rule for f in report.findings] == ["scan.not-regular"]


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="does not exist"):
        scan(tmp_path / "nope")
    with pytest.raises(ScanError, match="nothing to scan"):
        scan()


def test_parallel_and_serial_scans_agree(scanned_corpus: ScannedCorpus) -> None:
    root = scanned_corpus.written[0].path.parent
    serial = scan(root, workers=1, digest=True)
    assert [f.to_dict() for f in serial.findings] == [
        f.to_dict() for f in scanned_corpus.report.findings
    ]
    assert serial.files == scanned_corpus.report.files


def test_progress_reports_every_file(tmp_path: Path) -> None:
    for i in range(40):  # enough files for the process pool
        (tmp_path / f"{i}.pkl").write_bytes(pickle.dumps(i))
    seen: list[tuple[int, int]] = []
    scan(tmp_path, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (40, 40)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert all(total == 40 for _, total in seen)


def test_every_file_is_scanned_once_by_the_pool_whoever_takes_it(tmp_path: Path) -> None:
    """Workers start on their own shares of the list and take the back half of another's when
    theirs is done: every file is judged exactly once, as a serial scan judges it."""
    (tmp_path / "000.bin").write_bytes(b"\0" * (2 << 20))  # read from disk, not in memory
    for i in range(1, 70):
        (tmp_path / f"{i:03d}.pkl").write_bytes(pickle.dumps({"step": i}))
    (tmp_path / "032.pkl").write_bytes(pickle.dumps(os.system))
    (tmp_path / "068.pkl").write_bytes(pickle.dumps(os.system))
    serial = scan(tmp_path, workers=1)
    for workers in (2, 3, 7):
        parallel = scan(tmp_path, workers=workers)
        assert [f.to_dict() for f in parallel.findings] == [f.to_dict() for f in serial.findings]
        assert parallel.files == serial.files and len(parallel.files) == 70
    assert {f.location.path[-7:] for f in serial.findings
            if f.severity is Severity.CRITICAL and f.location} == {"032.pkl", "068.pkl"}


def test_shares_are_claimed_in_chunks_then_stolen_by_halves() -> None:
    from bastion.scan._pool import Shares

    shares = Shares.of([f"d/{i:03d}.pkl" for i in range(100)], 2)  # one folder: any cut
    assert shares.bounds == [0, 50, 50, 100]
    claimed = [shares.claim(0), shares.claim(1)]
    assert claimed == [range(0, 12), range(50, 62)]  # a quarter of what is left, at most 16
    while shares.bounds[0] < shares.bounds[1]:
        claimed.append(shares.claim(0))
    assert claimed[-1] == range(49, 50)
    claimed.append(shares.claim(0))  # its share done: the back half of the 38 the other has
    assert claimed[-1] == range(81, 85) and shares.bounds == [85, 100, 62, 81]
    while chunk := shares.claim(len(claimed) % 2):
        claimed.append(chunk)
    assert sorted(i for chunk in claimed for i in chunk) == list(range(100))
    slow = Shares([0, 50, 50, 100])
    chunk = slow.claim(0)
    slow.give_back(0, chunk[5:])  # five files took the chunk's time: the rest is shared again
    assert slow.bounds[:2] == [5, 50] and slow.claim(0) == range(5, 16)


def test_shares_are_cut_where_a_folder_begins_when_one_is_near() -> None:
    from bastion.scan._pool import Shares

    files = [f"root/a/{i:03d}.pkl" for i in range(45)] + [f"root/b/{i:03d}.npy" for i in range(55)]
    assert Shares.of(files, 2).bounds == [0, 45, 45, 100]  # not 50: b/ starts at 45
    far = [f"root/a/{i:03d}.pkl" for i in range(90)] + [f"root/b/{i:03d}.npy" for i in range(10)]
    assert Shares.of(far, 2).bounds == [0, 50, 50, 100]  # 90 is beyond a quarter of the way


def test_shares_are_cut_between_folders() -> None:
    """A folder's files (one format, one set of libraries to import) go to one worker."""
    from bastion.scan._pool import Shares

    files = [f"/r/a/{i}" for i in range(30)] + [f"/r/b/{d}/{i}" for d in "xyz" for i in range(10)]
    files += [f"/r/c/{i}" for i in range(40)]
    shares = Shares.of(files, 2)
    assert shares.bounds == [0, 60, 60, 100]  # /r/c begins at 60: the even cut, 50, moves there
    assert Shares.of(files, 4).bounds == [0, 30, 30, 50, 50, 75, 75, 100]  # b, b/z, none
    shares.bounds[:2] = [60, 60]  # the first worker is done: it takes the back half of c
    assert shares.claim(0) == range(80, 85)
    lone = Shares.of([f"/r/{i}" for i in range(10)], 2)  # one folder: cut in the middle
    assert lone.bounds == [0, 5, 5, 10]


def _fake_job(path: str) -> tuple[list, list]:
    if path == "raise":
        raise ValueError("no such thing")
    if path == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if path.startswith("slow"):
        time.sleep(0.004)
    return [], [path]


def test_a_worker_s_exception_is_raised_as_a_serial_scan_raises_it() -> None:
    from bastion.scan._pool import scan_parallel

    files = [f"f{i}" for i in range(40)]
    done: list[int] = []
    results = scan_parallel(files, _fake_job, 3, done.append)
    assert sorted(r[1][0] for r in results) == sorted(files) and done[-1] == 40
    with pytest.raises(ValueError, match="no such thing"):
        scan_parallel([*files, "raise"], _fake_job, 2)
    # Chunks that take too long are handed back part done, and their rest shared out.
    slow = [f"slow{i}" for i in range(60)]
    done.clear()
    assert sorted(r[1][0] for r in scan_parallel(slow, _fake_job, 2, done.append)) == sorted(slow)
    assert len(done) > 60 // 16 + 2 and done[-1] == 60


def test_a_worker_that_dies_fails_the_scan_closed() -> None:
    from bastion.scan._pool import scan_parallel

    with pytest.raises(ScanError, match="killed by signal 9"):
        scan_parallel([f"f{i}" for i in range(30)] + ["die"], _fake_job, 2)


def test_nesting_beyond_the_depth_limit_is_a_finding(tmp_path: Path) -> None:
    import gzip

    data = pickle.dumps([1])
    for _ in range(4):
        data = gzip.compress(data)
    (tmp_path / "deep.gz").write_bytes(data)
    report = scan(tmp_path, limits=ScanLimits(max_depth=2), workers=1)
    assert [f.rule for f in report.findings] == ["archive.limit.depth"]
    assert report.findings[0].location.member == "(gzip)!(gzip)"


def test_time_limit_is_a_finding_not_a_hang(tmp_path: Path) -> None:
    # many small members: the deadline is checked between members
    import zipfile

    with zipfile.ZipFile(tmp_path / "many.zip", "w") as z:
        for i in range(50):
            z.writestr(f"{i}.pkl", pickle.dumps(i))
    report = scan(tmp_path, limits=ScanLimits(timeout_s=0.0), workers=1)
    assert "scan.limit.time" in [f.rule for f in report.findings]


def test_digest_is_off_unless_asked_for(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(1))
    assert scan(tmp_path, workers=1).files[0].sha256 is None
