"""Containers: zip (incl. PyTorch checkpoints and ``.npz``), tar, 7z, gzip, bzip2, xz, zlib.

Each yields its members for the engine to sniff and scan, within the limits (member count,
size, compression ratio, nesting depth, and the bytes decompressed for the whole top-level file
at every depth together), and reports what a lenient reader would read differently from a
strict one.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import os
import posixpath
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, cast

from bastion.findings import Finding, Location, Severity
from bastion.scan._rules import finding
from bastion.scan._zipdir import ZipEntry, torch_pickle, zip_directory
from bastion.scan.formats._io import Spilled, member_source, read_chunks, spill, window
from bastion.scan.formats.torch import scan_tar_records
from bastion.scan.formats.torchscript import review_code
from bastion.scan.interface import Budget, Format, Member, ScanLimits, Source
from bastion.scan.pickle import Policy
from bastion.scan.sniff import is_lzma_alone, sniff

if TYPE_CHECKING:
    from py7zr.io import WriterFactory

__all__ = ["CompressedScanner", "SevenZipScanner", "TarScanner", "ZipScanner"]

_CHUNK: Final = 1 << 20
_CRC_MAX: Final = 256 << 20
"""Stored members up to this size have their CRC checked (larger ones are read only as needed)."""
_NAME_READ: Final = 256
"""Bytes of member name read with each local header (longer names take a second read)."""
_NAME_EXTRA: Final = struct.Struct("<HH").unpack_from
NEMO_CONFIG: Final = "model_config.yaml"
"""What makes a tar a NeMo archive (``.nemo``): ``SaveRestoreConnector.restore_from`` reads
this member at its root and instantiates it."""
_TORCH_META: Final = frozenset({
    "byteorder", "version", ".data/version", ".data/serialization_id", ".format_version",
    ".storage_alignment",
})
"""Small text records of a PyTorch zip that PyTorch reads as text, never unpickles."""


def _at(location: Location, offset: int | None = None) -> Location:
    return Location(location.path, location.member, offset)


def _unsafe_name(name: str) -> bool:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return True
    if ".." not in name:  # normpath only makes ".." from ".." (and most names have none)
        return False
    norm = posixpath.normpath(name.replace("\\", "/"))
    return norm == ".." or norm.startswith("../")


def _traversal(location: Location, name: str) -> Finding:
    """High: extraction writes outside the target under the default ``--fail-on`` too."""
    return finding(
        "archive.path-traversal", Severity.HIGH,
        f"member {name!r} would be extracted outside the target directory",
        _at(location), detail="Extracting this archive writes files elsewhere (Zip Slip).",
        evidence={"member": name},
    )


@dataclass(frozen=True, slots=True)
class ZipScanner:
    """Zip archives, read member by member from the central directory and each local header.

    Steps (each a finding when it fails):

    1. The central directory must parse; at most ``max_members`` members are read.
    2. Declared sizes must stay within the limits (zip-bomb guard, before decompressing);
       what is then decompressed is drawn from the top-level file's budget (nested bombs).
    3. For each member: no duplicate names, no path traversal, not encrypted, a local header
       whose name matches the central directory (PyTorch's reader uses the central name,
       Python's refuses a mismatch: scanners built on ``zipfile.open`` skip such members).
    4. Data is read the way a lenient reader does (from the local header, ignoring the CRC)
       and the CRC is checked separately: a mismatch is reported, never a reason to skip.
    5. In a PyTorch checkpoint, ``<prefix>/data/<n>`` records are raw tensor bytes PyTorch
       never unpickles and are not opened; every other member, every ``*.pkl`` included, is.
    6. A TorchScript archive's ``code/`` is reviewed for operators that act outside the
       model (``formats/torchscript.py``).
    """

    formats: frozenset[Format] = frozenset({Format.ZIP, Format.TORCH_ZIP, Format.NUMPY_NPZ})

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Yield each member's findings and the members themselves."""
        loc = source.location
        with source.open() as stream:
            # 1. central directory
            try:
                infos = zip_directory(stream)
            except Exception as exc:  # zipfile raises many types
                yield finding(
                    "archive.zip.unreadable", Severity.HIGH,
                    f"the zip directory cannot be read: {exc}", _at(loc),
                    detail="A lenient loader may still read members the scanner cannot see.",
                )
                return
            if len(infos) > limits.max_members:
                yield _limit(loc, f"{len(infos)} members, more than {limits.max_members}")
                infos = infos[: limits.max_members]
            # 2. declared sizes
            declared = sum(i.file_size for i in infos)
            if declared > limits.max_total_bytes:
                yield _limit(loc, f"members declare {declared} bytes in all, more than "
                             f"{limits.max_total_bytes}", rule="archive.bomb")
                return
            prefixes = {name[:-9] for i in infos if torch_pickle(name := i.filename)}
            storages = {f"{p}/data" for p in prefixes}
            seen: set[str] = set()
            held: list[tuple[ZipEntry, int]] = []
            read_at = _reader(stream)
            for info in infos:
                start, problems = _check_member(source, read_at, info, seen)
                if problems:
                    yield from problems
                if start is None:
                    continue
                # 5. PyTorch raw storages and text records
                name = info.filename
                folder, _, record = name.rpartition("/")
                if folder in storages and record.isdigit() and record.isascii():
                    continue
                if info.file_size <= 64 and any(
                    name == f"{p}/{m}" for p in prefixes for m in _TORCH_META
                ):
                    continue
                if record.endswith(".py") and any(  # TorchScript code? decided below
                    name.startswith(f"{p}/code/") for p in prefixes
                ):
                    held.append((info, start))
                    continue
                yield from self._content(source, info, start, limits)
            # 6. TorchScript: its __torch__ classes come from its own code/, reviewed as code
            if prefixes and any(f"{p}/constants.pkl" in seen for p in prefixes):
                stream.seek(0)
                yield from review_code(stream, loc)
                held = []
            for info, start in held:
                yield from self._content(source, info, start, limits)

    def _content(
        self, source: Source, info: ZipEntry, start: int, limits: ScanLimits,
    ) -> Iterator[Finding | Member]:
        """The member at ``start`` (after its local header) for the engine to scan."""
        loc, name = source.location, info.filename
        # 4. content, read leniently; CRC checked on the side
        if info.compress_type == zipfile.ZIP_STORED:
            opener = window(source.open, start, info.compress_size)
            if info.compress_size <= _CRC_MAX:
                with opener() as member:
                    crc = 0
                    for chunk in read_chunks(member):
                        crc = zlib.crc32(chunk, crc)
                if crc != info.crc:
                    yield _crc(loc, name)
            yield Member(name, member_source(source, name, info.compress_size, opener))
            return
        if info.compress_type not in (zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2):
            yield finding(
                "archive.zip.unsupported-method", Severity.HIGH,
                f"member {name!r} uses compression method {info.compress_type}",
                _at(loc), detail="Its content cannot be scanned.", evidence={"member": name},
            )
            return
        crc_box = [0]
        compressed = window(source.open, start, info.compress_size)
        with compressed() as packed, spill(
            _crc_tracked(_inflate(packed, info.compress_type), crc_box),
            info.compress_size, limits, source.budget,
        ) as out:
            if out.problem is not None and out.path is None:
                yield _stopped(loc, name, out, limits, source.budget)
                return
            if out.problem is not None:
                yield finding(
                    "archive.zip.corrupt", Severity.HIGH,
                    f"member {name!r} cannot be decompressed fully: {out.problem}", _at(loc),
                    evidence={"member": name},
                )
            elif crc_box[0] != info.crc:
                yield _crc(loc, name)
            if out.path is not None:
                opener = _file_opener(out.path)
                yield Member(name, member_source(source, name, out.size, opener))


def _reader(stream: BinaryIO) -> Callable[[int, int], bytes]:
    """``read_at(n, offset)``: one ``pread`` on a real file (no seek, no read-ahead of a
    buffer's worth for each of a checkpoint's thousand local headers), else seek and read."""
    raw = getattr(stream, "raw", None)
    if isinstance(raw, io.FileIO):
        return functools.partial(os.pread, raw.fileno())

    def seek_read(n: int, offset: int) -> bytes:
        stream.seek(offset)
        return stream.read(n)

    return seek_read


def _check_member(
    source: Source, read_at: Callable[[int, int], bytes], info: ZipEntry, seen: set[str],
) -> tuple[int | None, list[Finding]]:
    """Step 3 for one member: where its data starts (``None``: not to be read) and what is
    wrong with its name, encryption or local header. A plain function, not a generator: it
    runs for each of a checkpoint's thousand tensor records."""
    name, central, flags, _, _, compressed, _, offset, raw_name = info
    loc, size = source.location, source.size
    problems: list[Finding] = []
    if name.endswith("/"):  # ZipInfo.is_dir() raises on an empty name
        return None, problems
    if name in seen:
        problems.append(finding(
            "archive.zip.duplicate-name", Severity.MEDIUM,
            f"the name {name!r} appears more than once", _at(loc),
            detail="Readers disagree on which copy they use; both are scanned.",
            evidence={"member": name},
        ))
    seen.add(name)
    if _unsafe_name(name):
        problems.append(_traversal(loc, name))
    if flags & 0x1:
        problems.append(finding(
            "archive.zip.encrypted", Severity.HIGH, f"member {name!r} is encrypted",
            _at(loc), detail="Its content cannot be scanned.", evidence={"member": name},
        ))
        return None, problems
    header = read_at(30 + _NAME_READ, offset) if 0 <= offset < size else b""  # + its name
    if len(header) < 30 or not header.startswith(b"PK\x03\x04"):
        problems.append(finding(
            "archive.zip.bad-local-header", Severity.HIGH,
            f"member {name!r} has no valid local header", _at(loc, offset),
            evidence={"member": name},
        ))
        return None, problems
    name_len, extra_len = _NAME_EXTRA(header, 26)
    if name_len != len(raw_name) or not header.startswith(raw_name, 30):  # else the same name
        local_raw = header[30:30 + name_len]
        if len(local_raw) < name_len:
            local_raw += read_at(name_len - len(local_raw), offset + len(header))
        local = local_raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        if local != central:
            problems.append(finding(
                "archive.zip.name-mismatch", Severity.HIGH,
                f"member {name!r} is named {local!r} in its local header", _at(loc, offset),
                detail="PyTorch reads members by their central-directory name and ignores the "
                "local one; Python's zipfile refuses them, so scanners built on it skip them.",
                evidence={"central": name, "local": local},
            ))
    start = offset + 30 + name_len + extra_len
    if start + compressed > size:
        problems.append(finding(
            "archive.zip.truncated", Severity.HIGH,
            f"member {name!r} runs past the end of the file", _at(loc, start),
            evidence={"member": name},
        ))
        return None, problems
    return start, problems


def _file_opener(path: str) -> Callable[[], BinaryIO]:
    def open_file() -> BinaryIO:
        return open(path, "rb")

    return open_file


def _crc_tracked(chunks: Iterator[bytes], box: list[int]) -> Iterator[bytes]:
    for chunk in chunks:
        box[0] = zlib.crc32(chunk, box[0])
        yield chunk


def _inflate(stream: BinaryIO, method: int) -> Iterator[bytes]:
    """Decompress a zip member in bounded pieces (a bomb never sits in memory at once)."""
    if method == zipfile.ZIP_DEFLATED:
        z = zlib.decompressobj(-15)
        for data in read_chunks(stream):
            out = z.decompress(data, _CHUNK)
            yield out
            while z.unconsumed_tail:
                yield z.decompress(z.unconsumed_tail, _CHUNK)
        yield z.flush()
        return
    b = bz2.BZ2Decompressor()
    for data in read_chunks(stream):
        yield b.decompress(data, _CHUNK)
        while not b.needs_input and not b.eof:
            yield b.decompress(b"", _CHUNK)


def _crc(location: Location, name: str) -> Finding:
    return finding(
        "archive.zip.crc-mismatch", Severity.HIGH, f"member {name!r} fails its CRC check",
        _at(location),
        detail="PyTorch ignores CRCs, Python's zipfile raises: scanners built on it skip the "
        "member. It was scanned anyway; the mismatch means it was altered after packing.",
        evidence={"member": name},
    )


def _stopped(
    location: Location, name: str, out: Spilled, limits: ScanLimits, budget: Budget,
) -> Finding:
    """The finding for a member that a limit stopped while it was decompressed."""
    if out.problem == "total":
        return _over_budget(location, name, limits, budget)
    return _bomb(location, name, out.problem or "size", out.size)


def _bomb(location: Location, name: str, why: str, size: int) -> Finding:
    return finding(
        "archive.bomb", Severity.HIGH,
        f"member {name!r} expands past the {why} limit after {size} bytes; not scanned",
        _at(location),
        detail="A decompression bomb exhausts disk or memory; what lies beyond the limit "
        "was not scanned.", evidence={"member": name, "limit": why},
    )


def _over_budget(location: Location, name: str, limits: ScanLimits, budget: Budget) -> Finding:
    """The file's budget of decompressed bytes ran out at ``name``: the rest is not scanned."""
    return finding(
        "archive.bomb", Severity.HIGH,
        f"decompressing member {name!r} passes the limit of {limits.max_total_bytes} bytes "
        "decompressed per top-level file (max_total_bytes, every nesting level counted); it "
        "and the rest of the file are not scanned", _at(location),
        detail="Archives nested in archives (42.zip) keep each one under every per-archive "
        "limit while the total grows with each level. Nothing more of this file was "
        "decompressed, so what lies beyond this point is not vouched for.",
        evidence={"member": name, "limit": "total", "max_total_bytes": limits.max_total_bytes,
                  "decompressed": budget.spent},
    )


def _limit(location: Location, message: str, *, rule: str = "archive.limit.members") -> Finding:
    return finding(rule, Severity.HIGH, message, _at(location),
                   detail="Part of the archive was not scanned.")


@dataclass(frozen=True, slots=True)
class TarScanner:
    """Tar archives (compressed ones arrive decompressed from :class:`CompressedScanner`).

    PyTorch's pre-1.0 tar checkpoints (members ``pickle``, ``storages``, ``tensors``) are read
    the way ``torch.load`` reads them: ``storages`` and ``tensors`` interleave pickles with raw
    records, parsed by :func:`~bastion.scan.formats.torch.scan_tar_records`.

    A NeMo archive (``.nemo``, recognised by its content: a tar, gzipped or not, with
    ``model_config.yaml`` at its root; its weights are ``model_weights.ckpt``, a torch file
    the engine sniffs and scans like any member) has that config reviewed as Hydra and NeMo
    instantiate it on restore, wherever in the file its targets are
    (:func:`~bastion.scan.formats.configs.review_nemo_config`).
    """

    policy: Policy = field(default_factory=Policy.default)
    formats: frozenset[Format] = frozenset({Format.TAR, Format.TORCH_TAR})

    def with_policy(self, policy: Policy) -> TarScanner:
        """This scanner under ``policy``."""
        return replace(self, policy=policy)

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Yield regular members; report links that leave the archive and traversal names."""
        loc = source.location
        files: list[tarfile.TarInfo] = []
        with source.open() as stream:
            try:
                archive = tarfile.open(fileobj=stream, mode="r:")  # noqa: SIM115
            except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
                yield finding("archive.tar.unreadable", Severity.HIGH,
                              f"the tar archive cannot be read: {exc}", _at(loc))
                return
            total = 0
            links: set[str] = set()
            try:
                for m in archive:
                    if len(files) >= limits.max_members:
                        yield _limit(loc, f"more than {limits.max_members} members")
                        break
                    if _unsafe_name(m.name):
                        yield _traversal(loc, m.name)
                    through = _through_link(m.name, links)
                    if through is not None:
                        yield _written_through(loc, m.name, through)
                    if m.issym() or m.islnk():
                        links.add(posixpath.normpath(m.name))
                        yield from _link(loc, m)
                    elif m.isfile():
                        total += m.size
                        if m.size > limits.max_member_bytes or total > limits.max_total_bytes:
                            yield _bomb(loc, m.name, "size", m.size)
                        else:
                            files.append(m)
            except (tarfile.TarError, OSError, ValueError, EOFError) as exc:
                yield finding("archive.tar.corrupt", Severity.HIGH,
                              f"the tar archive breaks after {len(files)} members: {exc}",
                              _at(loc))
        torch_layout = {"pickle", "storages", "tensors"} <= {m.name for m in files}
        for m in files:
            opener = window(source.open, m.offset_data, m.size)
            member = member_source(source, m.name, m.size, opener)
            if torch_layout and m.name in ("storages", "tensors"):
                with opener() as records:
                    yield from scan_tar_records(m.name, records, member, limits, self.policy)
                continue
            if _extracted_as(m.name) == NEMO_CONFIG:
                from bastion.scan.formats.configs import review_nemo_config

                # the sniffer sends a config mentioning _target_ early on to ConfigScanner;
                # the rest of the review (and all of it otherwise) is done here
                sniffed = sniff(member) is Format.HYDRA_CONFIG
                yield from review_nemo_config(member, limits, self.policy, sniffed=sniffed)
            yield Member(m.name, member)


def _extracted_as(name: str) -> str:
    """Where extraction puts a member, relative to the target (``./a`` and ``/a`` are ``a``)."""
    return posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")


def _link(location: Location, m: tarfile.TarInfo) -> Iterator[Finding]:
    target = m.linkname if m.islnk() else posixpath.join(posixpath.dirname(m.name), m.linkname)
    if m.linkname.startswith("/") or _unsafe_name(target):
        yield finding(  # high: the link, or a file written through it, lands outside the target
            "archive.link-outside", Severity.HIGH,
            f"link {m.name!r} points outside the archive: {m.linkname!r}",
            _at(location), evidence={"member": m.name, "target": m.linkname},
        )


def _through_link(name: str, links: set[str]) -> str | None:
    """The earlier link member a path passes through (``d/x`` after a link ``d``), if any."""
    if not links:
        return None
    parts = posixpath.normpath(name.replace("\\", "/")).split("/")
    for i in range(1, len(parts)):
        if (prefix := "/".join(parts[:i])) in links:
            return prefix
    return None


def _written_through(location: Location, name: str, link: str) -> Finding:
    """A member extracted through a link member: where it lands is the link's choice, a way
    past extraction filters (Python's tarfile data filter, CVE-2025-4517 and kin)."""
    return finding(
        "archive.tar.through-link", Severity.HIGH,
        f"member {name!r} is written through the link {link!r}: it lands wherever the link "
        "points", _at(location),
        detail="Tar extractors follow a link member when a later member's path passes "
        "through it, so the archive chooses where that file is written.",
        evidence={"member": name, "link": link},
    )


@dataclass(frozen=True, slots=True)
class CompressedScanner:
    """Single-stream compression (gzip, bzip2, xz, LZMA-alone, zlib — joblib's default and
    its other ``compress=`` choices): one member."""

    formats: frozenset[Format] = frozenset(
        {Format.GZIP, Format.BZIP2, Format.XZ, Format.LZMA, Format.LZ4, Format.ZLIB}
    )

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Decompress within the limits and yield the content as the member."""
        loc = source.location
        with source.open() as stream:
            head = stream.read(4096)  # enough for LZMA-alone, which has no magic number
            stream.seek(0)
            if head.startswith(_LZ4_MAGIC) and not _lz4_available():
                yield finding(
                    "archive.compressed.unsupported", Severity.HIGH,
                    "the LZ4 stream cannot be opened here: its content was not scanned",
                    _at(loc), detail="joblib.load decompresses it (with the lz4 package) and "
                    "unpickles what comes out.",
                    remediation="Install the lz4 package where Bastion runs, then scan again.",
                )
                return
            chunks, kind = _decompressor(head, stream)
            with spill(chunks, source.size, limits, source.budget) as out:
                if out.problem is not None and out.path is None:
                    yield _stopped(loc, f"({kind})", out, limits, source.budget)
                    return
                if out.problem is not None:
                    yield finding(
                        "archive.compressed.corrupt", Severity.HIGH,
                        f"the {kind} stream is damaged after {out.size} bytes: {out.problem}",
                        _at(loc), detail="What was decompressed before the damage is scanned.",
                    )
                if out.path is not None:
                    name = f"({kind})"
                    opener = _file_opener(out.path)
                    yield Member(name, member_source(source, name, out.size, opener))


_LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"


def _lz4_available() -> bool:
    """Whether the optional ``lz4`` package (what joblib uses for ``compress="lz4"``) is here."""
    import importlib.util

    return importlib.util.find_spec("lz4") is not None


def _decompressor(head: bytes, stream: BinaryIO) -> tuple[Iterator[bytes], str]:
    if head.startswith(b"\x1f\x8b"):
        return read_chunks(gzip.GzipFile(fileobj=stream)), "gzip"  # type: ignore[arg-type]
    if head.startswith(b"BZh"):
        return read_chunks(bz2.BZ2File(stream)), "bzip2"  # type: ignore[arg-type]
    if head.startswith(b"\xfd7zXZ"):
        return read_chunks(lzma.LZMAFile(stream)), "xz"  # type: ignore[arg-type]
    if head.startswith(_LZ4_MAGIC):
        import lz4.frame  # type: ignore[import-not-found]  # present: checked by the caller

        return read_chunks(lz4.frame.LZ4FrameFile(stream)), "lz4"
    if is_lzma_alone(head):
        alone = lzma.LZMAFile(stream, format=lzma.FORMAT_ALONE)  # noqa: SIM115
        return read_chunks(alone), "lzma"  # type: ignore[arg-type]
    return _unzlib(stream), "zlib"


def _unzlib(stream: BinaryIO) -> Iterator[bytes]:
    z = zlib.decompressobj()
    for data in read_chunks(stream):
        yield z.decompress(data, _CHUNK)
        while z.unconsumed_tail:
            yield z.decompress(z.unconsumed_tail, _CHUNK)
        if z.eof:
            break
    yield z.flush()


@dataclass(frozen=True, slots=True)
class SevenZipScanner:
    """7z archives via py7zr, extracted into capped temporary files (sizes checked first).

    Extraction stops as soon as the top-level file's budget of decompressed bytes is spent.
    """

    formats: frozenset[Format] = frozenset({Format.SEVENZIP})

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Check the declared sizes, extract within the limits, yield each file."""
        import py7zr

        loc = source.location
        with source.open() as stream, tempfile.TemporaryDirectory(prefix="bastion-7z-") as tmp:
            try:
                archive = py7zr.SevenZipFile(stream)
                if archive.needs_password():
                    yield finding("archive.7z.encrypted", Severity.HIGH,
                                  "the 7z archive is encrypted", _at(loc),
                                  detail="Its content cannot be scanned.")
                    return
                infos = [i for i in archive.list() if not i.is_directory]
            except Exception as exc:
                yield finding("archive.7z.unreadable", Severity.HIGH,
                              f"the 7z archive cannot be read: {exc.__class__.__name__}: {exc}",
                              _at(loc))
                return
            if len(infos) > limits.max_members:
                yield _limit(loc, f"{len(infos)} members, more than {limits.max_members}")
                return
            declared = sum(int(i.uncompressed or 0) for i in infos)
            if declared > limits.max_total_bytes or any(
                int(i.uncompressed or 0) > limits.max_member_bytes for i in infos
            ):
                yield _limit(loc, f"members declare {declared} bytes", rule="archive.bomb")
                return
            factory = _CappedFactory(Path(tmp), limits, source.budget)
            try:
                archive.extract(factory=cast("WriterFactory", factory))
            except Exception as exc:  # _OverBudgetError included, however py7zr passes it on
                if not source.budget.exhausted(limits):
                    yield finding("archive.7z.corrupt", Severity.HIGH,
                                  f"the 7z archive cannot be extracted: "
                                  f"{exc.__class__.__name__}", _at(loc))
            finally:
                factory.close()
            if source.budget.exhausted(limits):  # the file's budget ran out: nothing handed on
                yield _over_budget(loc, factory.stopped_at(), limits, source.budget)
                return
            for name, (path, size, over) in factory.files.items():
                if _unsafe_name(name):
                    yield _traversal(loc, name)
                if over:
                    yield _bomb(loc, name, "size", size)
                    continue
                yield Member(name, member_source(source, name, size, _file_opener(str(path))))


class _OverBudgetError(Exception):
    """Raised from a 7z writer to stop py7zr once the file's decompression budget is spent."""


@dataclass
class _CappedFactory:
    """py7zr writer factory: each member into its own temporary file, capped in size."""

    root: Path
    limits: ScanLimits
    budget: Budget
    """The top-level file's tally, drawn from by every writer."""
    files: dict[str, tuple[Path, int, bool]] = field(default_factory=dict)
    writers: list[_CappedWriter] = field(default_factory=list)

    def create(self, filename: str) -> _CappedWriter:
        path = self.root / str(len(self.files))
        self.files[filename] = (path, 0, False)
        writer = _CappedWriter(path, filename, self.limits, self.budget,
                               lambda w: self._done(filename, path, w))
        self.writers.append(writer)
        return writer

    def stopped_at(self) -> str:
        """The member whose writing spent the budget (``?`` if none did)."""
        return next((w.name for w in self.writers if w.over_budget), "?")

    def close(self) -> None:
        """Close what py7zr left open (it does not when a writer raises)."""
        for writer in self.writers:
            writer.close()

    def _done(self, filename: str, path: Path, writer: _CappedWriter) -> None:
        self.files[filename] = (path, writer.written, writer.over)


class _CappedWriter:
    """py7zr's Py7zIO over a file: drops bytes past the member cap, stops past the budget."""

    def __init__(
        self, path: Path, name: str, limits: ScanLimits, budget: Budget,
        on_close: Callable[[_CappedWriter], None],
    ) -> None:
        self.file = path.open("w+b")
        self.name, self.limits, self.budget, self.on_close = name, limits, budget, on_close
        self.written, self.over, self.over_budget = 0, False, False

    def write(self, data: bytes | bytearray) -> int:
        self.written += len(data)
        if not self.budget.spend(len(data), self.limits):
            self.over_budget = True
            raise _OverBudgetError
        if self.written > self.limits.max_member_bytes:
            self.over = True
        else:
            self.file.write(data)
        return len(data)

    def read(self, size: int | None = None) -> bytes:
        return self.file.read(size if size is not None else -1)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def flush(self) -> None:
        self.file.flush()

    def size(self) -> int:
        return self.written

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()
            self.on_close(self)
