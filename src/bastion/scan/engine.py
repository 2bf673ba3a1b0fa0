"""Walk paths, sniff each file by content, dispatch to its scanner, recurse into members.

Files are scanned in forked worker processes, one per idle core, when there are enough of them
to repay the workers' start-up (``_pool.py``), else in this process; each top-level file's
SHA-256 is computed alongside its scan, so results are bound to content (DESIGN.md invariant 3).
Anything that cannot be read or understood becomes a finding (invariant 2). A directory is
then reviewed as a model repository: the Python files its ``auto_map`` configs make
``trust_remote_code`` run, and what they import (``formats/configs.review_repository``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

from bastion.findings import Finding, Location, Severity
from bastion.scan._pool import scan_parallel
from bastion.scan._rules import finding
from bastion.scan._zipdir import forget_zip_directories
from bastion.scan.formats import CONTAINERS, SCANNERS
from bastion.scan.interface import (
    Budget,
    Format,
    FormatScanner,
    Member,
    ScanError,
    ScanLimits,
    ScannedFile,
    ScanReport,
    Source,
)
from bastion.scan.pickle.policy import Policy, PolicyAware
from bastion.scan.sniff import sniff

__all__ = ["Progress", "scan", "scan_bytes"]

Progress = Callable[[int, int], None]
"""Called as ``progress(files_done, files_total)`` while a scan runs."""

_HASH_CHUNK: Final = 1 << 20
_SMALL_FILE: Final = 1 << 20
"""Top-level files up to this size are read into memory once."""
_ZIP_END: Final = b"PK\x05\x06"
_ZIP_TAIL: Final = (1 << 16) + 22
"""How far from its end zipfile looks for the end of a central directory (``_EndRecData``: the
22-byte record and a comment of up to 64 KiB)."""
_POOL_MIN_FILES: Final = 64
_POOL_MIN_BYTES: Final = 8 << 20
"""Fewer files than :data:`_POOL_MIN_FILES`, holding fewer bytes than this, are scanned
in-process: a pool's start-up (forks, each worker's imports) would cost more than it saves.
Measured on 2 idle cores with samples of ``bench/scan_directory.py``'s mixed directory: 16 and
32 files (3 and 8 MB) 10% faster in one process, 64 and 100 even, 200 files 5% and all 882
30% faster with two workers. Bytes count too because an object-dense pickle is read at only
about 6 MB/s, while whole directories of arrays are done in milliseconds."""


def scan(
    *paths: str | os.PathLike[str],
    policy: Policy | None = None,
    limits: ScanLimits | None = None,
    progress: Progress | None = None,
    digest: bool = False,
    workers: int | None = None,
) -> ScanReport:
    """Scan files and directories (recursively) without executing anything in them.

    Args:
        paths: files or directories.
        policy: the globals allowlist (default: :meth:`Policy.default`).
        limits: size, depth, count and time bounds (default: :class:`ScanLimits`).
        progress: called with (files done, files total).
        digest: also compute each top-level file's SHA-256, binding the report to the exact
            bytes scanned. Off by default: it reads every byte (about 1 s per GB here), while
            the scan itself reads only pickles, headers and directories. The catalog turns
            it on, and refuses a file whose stored bytes differ from the scanned ones.
        workers: processes to use. By default one per idle core (:func:`_idle_cores`: the
            run queue now, not the load average, which trails by a minute), and one (this
            process) for fewer than :data:`_POOL_MIN_FILES` files holding fewer than
            :data:`_POOL_MIN_BYTES`.

    Raises:
        ScanError: a path does not exist or nothing was given.
    """
    started = time.monotonic()
    if not paths:
        raise ScanError("nothing to scan", hint="name at least one file or directory")
    policy = policy or Policy.default()
    limits = limits or ScanLimits()
    files, findings, roots = _collect([Path(p) for p in paths])
    scanned: list[ScannedFile] = []
    job = _Job(policy, limits, digest)
    workers = _workers(workers, files)
    if workers == 1:
        for i, path in enumerate(files, 1):
            f, s = job(path)
            findings += f
            scanned += s
            if progress:
                progress(i, len(files))
    else:
        def done(count: int) -> None:
            if progress:
                progress(count, len(files))

        for f, s in scan_parallel(files, job, workers, done):
            findings += f
            scanned += s
    findings += _repositories(findings, roots)
    findings.sort(key=_order)
    scanned.sort(key=lambda s: (s.location.path, s.location.member or ""))
    return ScanReport(tuple(findings), tuple(scanned), time.monotonic() - started)


def _repositories(findings: Sequence[Finding], roots: dict[str, str]) -> list[Finding]:
    """Each directory whose configs name ``auto_map`` code (``repo.remote-code`` on a file
    the walk found, not an archive member) reviewed as the repository ``from_pretrained``
    would load: the Python files it would run, followed through their relative imports."""
    by_dir: dict[str, set[str]] = {}
    for f in findings:
        loc = f.location
        if f.rule == "repo.remote-code" and loc is not None and loc.member is None \
                and loc.path in roots:
            by_dir.setdefault(os.path.dirname(loc.path), set()).add(loc.path)
    if not by_dir:
        return []
    from bastion.scan.formats.configs import review_repository

    found: list[Finding] = []
    for configs in by_dir.values():
        found += review_repository(configs, roots[next(iter(configs))])
    return found


def scan_bytes(
    data: bytes,
    name: str,
    *,
    policy: Policy | None = None,
    limits: ScanLimits | None = None,
) -> ScanReport:
    """Scan bytes already in memory exactly as :func:`scan` scans a file holding them.

    For a caller that will use the bytes next (``bastion.models.load_model``): what is
    scanned is then what is loaded, with no second read of a file that may have changed.
    The report's top-level file is named ``name`` and carries the bytes' SHA-256.

    Args:
        data: the content.
        name: what to call it in findings (its path, usually).
        policy: the globals allowlist (default: :meth:`Policy.default`).
        limits: size, depth, count and time bounds (default: :class:`ScanLimits`).
    """
    started = time.monotonic()
    job = _Job(policy or Policy.default(), limits or ScanLimits(), digest=True)
    findings, scanned = job.in_memory(data, name)
    findings.sort(key=_order)
    scanned.sort(key=lambda s: (s.location.path, s.location.member or ""))
    return ScanReport(tuple(findings), tuple(scanned), time.monotonic() - started)


def _workers(requested: int | None, files: Sequence[str]) -> int:
    """Processes for ``files``: as many as asked for, else one per idle core when the files
    are enough work to repay a pool's start-up, else one (the scan runs in this process)."""
    if requested:
        return max(1, min(requested, len(files)))
    if len(files) < 2:
        return 1
    if len(files) < _POOL_MIN_FILES and _total_size(files, _POOL_MIN_BYTES) < _POOL_MIN_BYTES:
        return 1
    return max(1, min(_idle_cores(), len(files)))


def _total_size(files: Sequence[str], enough: int) -> int:
    """The files' bytes, counted until ``enough``."""
    total = 0
    for path in files:
        with contextlib.suppress(OSError):  # the scan itself reports it
            total += os.stat(path).st_size
        if total >= enough:
            break
    return total


def _cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores or 1


def _idle_cores() -> int:
    """The cores this process may use less those busy with other work at this instant.

    Busy means runnable now: the run queue's length (the fourth field of ``/proc/loadavg``),
    less this process. Unlike the load average it does not trail, so a scan that follows
    another is not held back by it. On cores another program keeps busy a pool only adds its
    start-up and each worker's imports: one process measured faster there (10-30% for the
    directory of ``bench/scan_directory.py`` with one or two other busy programs on 2 cores).
    """
    cores = _cores()
    try:
        with open("/proc/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):  # not Linux: every core counts as idle
        return cores
    return max(1, cores - max(0, running - 1))


def _order(f: Finding) -> tuple[int, str, str, int, str]:
    loc = f.location or Location("")
    return (-f.severity.rank, loc.path, loc.member or "", loc.offset or 0, f.rule)


def _collect(roots: Iterable[Path]) -> tuple[list[str], list[Finding], dict[str, str]]:
    """Every regular file under ``roots``; symlinks leaving a root and odd files are findings.
    Also: each file found by walking a directory, and that directory (the repository root)."""
    files: list[str] = []
    findings: list[Finding] = []
    walked: dict[str, str] = {}
    for root in roots:
        if not root.exists():
            raise ScanError(f"{root} does not exist", hint="check the path")
        if not root.is_dir():
            _add_file(root, files, findings)
        else:
            first = len(files)
            _walk_dir(str(root), root.resolve(), files, findings)
            walked.update((f, str(root)) for f in files[first:])
    return files, findings, walked


def _walk_dir(directory: str, real_root: Path, files: list[str], findings: list[Finding]) -> None:
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.is_symlink():
            _check_link(Path(entry.path), real_root, findings)
        elif entry.is_dir(follow_symlinks=False):
            _walk_dir(entry.path, real_root, files, findings)
        elif entry.is_file(follow_symlinks=False):
            files.append(entry.path)
        else:
            _add_file(Path(entry.path), files, findings)


def _check_link(path: Path, real_root: Path, findings: list[Finding]) -> None:
    target = path.resolve()
    if target == real_root or real_root in target.parents:
        return  # its target is inside the root and scanned there
    findings.append(finding(
        "scan.symlink.outside-root", Severity.HIGH,
        f"symbolic link points outside the scanned directory: {os.readlink(path)}",
        Location(str(path)),
        detail="A loader following it reads a file that was not scanned (and may change).",
        remediation="Replace the link with the file itself, then scan again.",
        evidence={"target": str(target)},
    ))


def _add_file(path: Path, files: list[str], findings: list[Finding]) -> None:
    mode = path.stat().st_mode
    if stat.S_ISREG(mode):
        files.append(str(path))
    else:
        findings.append(finding(
            "scan.not-regular", Severity.MEDIUM, "not a regular file; not read",
            Location(str(path)), detail="Devices, pipes and sockets are never read.",
        ))


@dataclass(frozen=True, slots=True)
class _Job:
    """One top-level file's scan: runs in a worker process."""

    policy: Policy
    limits: ScanLimits
    digest: bool
    scanners: dict[Format, FormatScanner] = field(default_factory=dict, compare=False)
    """Each format's scanner under ``policy``, made once per process rather than per file."""

    def __call__(self, path: str) -> tuple[list[Finding], list[ScannedFile]]:
        size = os.stat(path).st_size
        if size <= _SMALL_FILE:  # read once: sniffing, scanning and hashing share the bytes
            with open(path, "rb") as f:
                return self.in_memory(f.read(), path)
        ctx, budget = self._start()
        digest: list[str] = []
        # hashed in a thread while scanned (hashlib releases the GIL)
        hasher = threading.Thread(target=_sha256, args=(path, digest)) if self.digest else None
        if hasher:
            hasher.start()
        ctx.walk(Source(
            Location(path), size, lambda: open(path, "rb"), budget=budget,  # noqa: SIM115
        ))
        if hasher:
            hasher.join()
        return _bound(ctx, digest[0] if digest else None)

    def in_memory(self, data: bytes, name: str) -> tuple[list[Finding], list[ScannedFile]]:
        """The same scan of bytes already in memory, reported under ``name``."""
        ctx, budget = self._start()
        ctx.walk(Source(Location(name), len(data), lambda: io.BytesIO(data), budget=budget))
        return _bound(ctx, hashlib.sha256(data).hexdigest() if self.digest else None)

    def _start(self) -> tuple[_Context, Budget]:
        """A fresh context for one top-level file, and its budget of decompressed bytes,
        shared by every nesting level: the top-level Source carries it and each member's
        Source is handed the same one."""
        forget_zip_directories()
        deadline = time.monotonic() + self.limits.timeout_s
        return _Context(self.policy, self.limits, deadline, self.scanners), Budget()


def _bound(ctx: _Context, digest: str | None) -> tuple[list[Finding], list[ScannedFile]]:
    """The context's results, the top-level file bound to its digest when there is one."""
    if digest is not None:
        top = ctx.files[0]
        ctx.files[0] = ScannedFile(top.location, top.format, top.size, digest)
    return ctx.findings, ctx.files


def _sha256(path: str, out: list[str]) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    out.append(h.hexdigest())


@dataclass
class _Context:
    policy: Policy
    limits: ScanLimits
    deadline: float
    scanners: dict[Format, FormatScanner] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    files: list[ScannedFile] = field(default_factory=list)
    timed_out: bool = False
    over_budget: bool = False

    def walk(self, source: Source) -> None:
        """Sniff, scan and recurse; every failure becomes a finding, none escapes."""
        loc = source.location
        try:
            fmt = sniff(source)
        except Exception as exc:
            self.findings.append(_error(loc, "reading it", exc))
            self.files.append(ScannedFile(loc, Format.UNKNOWN, source.size))
            return
        self.files.append(ScannedFile(loc, fmt, source.size))
        spans: list[tuple[int, int]] = []
        if fmt is Format.UNKNOWN:
            self.findings.append(finding(
                "scan.format.unknown", Severity.INFO, "not a recognised model or archive format",
                loc, detail="Nothing in it was interpreted; no known loader would run it as code.",
                remediation="None needed if this is data or documentation.",
            ))
        else:
            spans = self._dispatch(source, fmt)
        if fmt not in CONTAINERS and source.size > 22:
            self._polyglot(source, fmt, spans)

    def _dispatch(self, source: Source, fmt: Format) -> list[tuple[int, int]]:
        """Scan ``source`` as ``fmt``; returns the spans of the members it stores plainly."""
        spans: list[tuple[int, int]] = []
        self._scan_as(source, fmt, spans)
        return spans

    def _scan_as(self, source: Source, fmt: Format, spans: list[tuple[int, int]]) -> None:
        loc = source.location
        scanner = SCANNERS.get(fmt)
        if scanner is None:
            self.findings.append(finding(
                "scan.format.unscanned", Severity.HIGH, f"{fmt.value} files are not scanned yet",
                loc, detail="The format was recognised but this Bastion has no scanner for it.",
            ))
            return
        if fmt in CONTAINERS and source.depth >= self.limits.max_depth:
            self.findings.append(finding(
                "archive.limit.depth", Severity.HIGH,
                f"{fmt.value} nested {source.depth} deep, beyond the limit of "
                f"{self.limits.max_depth}; not opened", loc,
                detail="Deep nesting hides content from scanners that give up early.",
            ))
            return
        if self._spent(source):
            return
        scanner = self._under_policy(fmt, scanner)
        try:
            for item in scanner.scan(source, self.limits):
                if isinstance(item, Member):
                    if time.monotonic() > self.deadline:
                        self._time_up(loc)
                        return
                    if item.span is not None:
                        spans.append(item.span)
                    self.walk(item.source)
                else:
                    self.findings.append(item)
                if self._spent(source):  # stops every enclosing level too (fail closed)
                    return
        except Exception as exc:
            self.findings.append(_error(loc, f"scanning it as {fmt.value}", exc))

    def _time_up(self, loc: Location) -> None:
        if not self.timed_out:
            self.timed_out = True
            self.findings.append(finding(
                "scan.limit.time", Severity.HIGH,
                f"the {self.limits.timeout_s:.0f} s time limit was reached; the rest is not "
                "scanned", loc,
            ))

    def _under_policy(self, fmt: Format, scanner: FormatScanner) -> FormatScanner:
        mine = self.scanners.get(fmt)
        if mine is None:
            mine = scanner
            if hasattr(scanner, "with_policy"):  # PolicyAware (isinstance on a Protocol is slow)
                mine = cast(PolicyAware, scanner).with_policy(self.policy)
            self.scanners[fmt] = mine
        return mine

    def _spent(self, source: Source) -> bool:
        """Whether the file's budget of decompressed bytes is spent: then nothing more is read.

        ``source.budget`` is the top-level file's, shared by all its members. The decompressor
        that ran out reports where (``archive.bomb``, limit ``total``); this only makes sure
        such a finding exists, whoever spent the budget.
        """
        if not source.budget.exhausted(self.limits):
            return False
        if not self.over_budget:
            self.over_budget = True
            if not any(f.rule == "archive.bomb" and f.evidence.get("limit") == "total"
                       for f in self.findings):
                self.findings.append(finding(
                    "archive.bomb", Severity.HIGH,
                    f"more than {self.limits.max_total_bytes} bytes decompressed for this file "
                    "(max_total_bytes); the rest is not scanned", source.location,
                    evidence={"limit": "total", "max_total_bytes": self.limits.max_total_bytes,
                              "decompressed": source.budget.spent},
                ))
        return True

    def _polyglot(self, source: Source, fmt: Format, spans: list[tuple[int, int]]) -> None:
        """A zip directory at the end of a non-container file: zip readers see another file.

        (Containers are left out: their own members are scanned, and a tar whose last member
        is a zip looks like this too. So is a zip the scanner of ``fmt`` handed on as a
        member stored in place, ``spans``, whose directory this is: it was scanned.)
        """
        with source.open() as stream:
            try:  # the end-of-directory record lies in the last 64 KiB + 22 bytes, or nowhere
                base = max(0, stream.seek(0, os.SEEK_END) - _ZIP_TAIL)
                stream.seek(base)
                tail = stream.read()
                at = tail.rfind(_ZIP_END)
                if at < 0:
                    return  # most files: one read, no zipfile
                if any(o <= base + at and base + at + 22 <= o + n for o, n in spans):
                    return  # the directory of a member already scanned as an archive
            except OSError:
                return  # as zipfile.is_zipfile answers
            if not zipfile.is_zipfile(stream):
                return
        self.findings.append(finding(
            "scan.polyglot", Severity.HIGH,
            f"this {fmt.value} file is also a zip archive (directory at its end)",
            source.location,
            detail="Readers that look at the end (zipfile, numpy, some model loaders) see a "
            "different file from those that read the start. Both views are scanned.",
        ))
        self._dispatch(source, Format.ZIP)


def _error(loc: Location, doing: str, exc: BaseException) -> Finding:
    return finding(
        "scan.error", Severity.HIGH, f"the scanner failed while {doing}: "
        f"{exc.__class__.__name__}: {exc}"[:300], loc,
        detail="What could not be scanned cannot be vouched for (fail closed).",
        evidence={"exception": exc.__class__.__name__},
    )
