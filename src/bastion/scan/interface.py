"""The scanner's contracts: what a format scanner receives, what it returns, and the report.

The engine (``engine.py``) sniffs each file or archive member by content (``sniff.py``), picks
the :class:`FormatScanner` registered for that :class:`Format`, and hands it a :class:`Source`.
A scanner never executes its input (DESIGN.md invariant 1) and fails closed (invariant 2): a
parse error, a truncated stream or a limit hit is a finding, never silence.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from bastion.errors import BastionError
from bastion.findings import Finding, Location, Severity, worst

if TYPE_CHECKING:
    from bastion.scan.pickle.policy import Policy

__all__ = [
    "Format",
    "FormatScanner",
    "Member",
    "PolicyAware",
    "ScanError",
    "ScanLimits",
    "ScanReport",
    "ScannedFile",
    "Source",
]


class ScanError(BastionError):
    """The scanner itself cannot run (bad arguments, unreadable policy file)."""


class Format(enum.StrEnum):
    """Formats recognised by content. ``UNKNOWN`` is reported, never silently dropped."""

    PICKLE = "pickle"
    TORCH_ZIP = "torch-zip"
    TORCH_LEGACY = "torch-legacy"
    TORCH_TAR = "torch-tar"
    JOBLIB = "joblib"
    NUMPY = "numpy"
    NUMPY_NPZ = "numpy-npz"
    KERAS = "keras"
    HDF5 = "hdf5"
    SAVEDMODEL = "tf-savedmodel"
    ONNX = "onnx"
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    TOKENIZER_CONFIG = "hf-tokenizer-config"
    ZIP = "zip"
    TAR = "tar"
    SEVENZIP = "7z"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    ZLIB = "zlib"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Bounds that keep hostile input from exhausting the scanner. Hitting one is a finding.

    An instance also keeps the tally of bytes decompressed against ``max_total_bytes``: the
    scanner protocol hands every scanner these limits, so the tally reaches every decompressor
    at every nesting depth. The engine takes a fresh copy per top-level file
    (:meth:`for_file`); a caller driving scanners directly should do the same.
    """

    max_depth: int = 5
    """Containers nested deeper than this are not opened."""
    max_member_bytes: int = 2 * 1024**3
    """Largest decompressed archive member read."""
    max_total_bytes: int = 20 * 1024**3
    """Most bytes decompressed for one top-level file, every nesting level counted together.

    A zip of zips (42.zip) keeps each archive under every per-archive limit while the total
    grows with each level; past this budget nothing more of the file is decompressed. Each
    archive's declared sizes are also checked against it, before anything is decompressed.
    """
    max_ratio: int = 200
    """Largest compression ratio accepted for a member before it counts as a bomb."""
    max_members: int = 100_000
    """Most members read from one archive."""
    max_pickle_ops: int = 50_000_000
    """Most pickle opcodes interpreted per stream."""
    max_memo: int = 4_000_000
    """Most pickle memo entries per stream."""
    timeout_s: float = 300.0
    """Wall-clock budget per top-level file."""
    _spent: list[int] = field(default_factory=lambda: [0], init=False, repr=False, compare=False)
    """Bytes decompressed so far under these limits (a box: the limits themselves are frozen)."""

    def for_file(self) -> ScanLimits:
        """The same limits with nothing decompressed yet: one top-level file's budget."""
        return replace(self)

    def spend(self, n: int) -> bool:
        """Count ``n`` more decompressed bytes; ``False`` once the total passes the budget."""
        self._spent[0] += n
        return self._spent[0] <= self.max_total_bytes

    @property
    def spent(self) -> int:
        """Bytes decompressed so far under these limits, all nesting levels together."""
        return self._spent[0]

    @property
    def exhausted(self) -> bool:
        """``max_total_bytes`` has been passed: nothing more of this file is decompressed."""
        return self._spent[0] > self.max_total_bytes


@dataclass(frozen=True, slots=True)
class Source:
    """Something to scan: a seekable binary stream and where it came from."""

    location: Location
    """File path, archive member chain (joined by ``!``), offset 0."""
    size: int
    """Bytes available from ``open()``."""
    open: Callable[[], BinaryIO]
    """Opens a fresh seekable stream positioned at 0; the caller closes it."""
    depth: int = 0
    """How many containers enclose it."""


@dataclass(frozen=True, slots=True)
class Member:
    """An archive member a container scanner hands back to the engine to sniff and scan."""

    name: str
    source: Source


class FormatScanner(Protocol):
    """One format's scanner: yields findings, and members for the engine to recurse into."""

    @property
    def formats(self) -> frozenset[Format]:
        """The sniffed formats it handles."""
        ...

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Scan ``source`` without executing it."""
        ...


@runtime_checkable
class PolicyAware(Protocol):
    """A scanner whose verdicts depend on the globals policy (pickle-bearing formats)."""

    def with_policy(self, policy: Policy) -> FormatScanner:
        """The same scanner judging imports by ``policy``."""
        ...


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """One file or member the engine looked at."""

    location: Location
    """Where it is."""
    format: Format
    """What the content turned out to be."""
    size: int
    """Its size in bytes."""
    sha256: str | None = None
    """Content digest of top-level files (results are bound to it, invariant 3)."""


@dataclass(frozen=True, slots=True)
class ScanReport:
    """Everything one scan found; ``bastion.scan(path)`` returns this."""

    findings: Sequence[Finding]
    """Every finding, worst first."""
    files: Sequence[ScannedFile] = field(default_factory=tuple)
    """Every file and member scanned, with its sniffed format."""
    elapsed_s: float = 0.0
    """Wall-clock time of the scan."""

    @property
    def worst(self) -> Severity | None:
        """The highest severity found, or ``None``."""
        return worst(self.findings)

    @property
    def clean(self) -> bool:
        """No finding at medium or above."""
        w = self.worst
        return w is None or w < Severity.MEDIUM
