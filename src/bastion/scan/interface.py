"""The scanner's contracts: what a format scanner receives, what it returns, and the report.

The engine (``engine.py``) sniffs each file or archive member by content (``sniff.py``), picks
the :class:`FormatScanner` registered for that :class:`Format`, and hands it a :class:`Source`.
A scanner never executes its input (DESIGN.md invariant 1) and fails closed (invariant 2): a
parse error, a truncated stream or a limit hit is a finding, never silence.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from bastion.errors import BastionError
from bastion.findings import Finding, Location, Severity, worst

__all__ = [
    "Budget",
    "Format",
    "FormatScanner",
    "Member",
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
    CHAT_TEMPLATE = "chat-template"
    """A standalone Jinja chat template (``chat_template.jinja``)."""
    HF_CONFIG = "hf-config"
    """A Hugging Face ``config.json`` with ``auto_map``: Python files that run on load."""
    HYDRA_CONFIG = "hydra-config"
    """YAML or JSON with ``_target_`` nodes that ``hydra.utils.instantiate`` imports and calls."""
    ZIP = "zip"
    TAR = "tar"
    SEVENZIP = "7z"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    LZ4 = "lz4"
    """An LZ4 frame (``joblib.dump(..., compress="lz4")``)."""
    """LZMA-alone (``.lzma``): what ``joblib.dump(..., compress="lzma")`` writes."""
    ZLIB = "zlib"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Bounds that keep hostile input from exhausting the scanner. Hitting one is a finding.

    Pure configuration, shared by every file of a scan. What one top-level file has used of
    ``max_total_bytes`` is counted by that file's :class:`Budget`, carried by its
    :class:`Source`.
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


@dataclass(slots=True)
class Budget:
    """The bytes decompressed so far for one top-level file, every nesting level together.

    Mutable on purpose, and owned by the file: the engine makes one per top-level file, hands
    it on in that file's :class:`Source`, and every member's source shares it
    (``formats._io.member_source``), so a decompressor at any depth draws from the same tally
    against :attr:`ScanLimits.max_total_bytes`. A caller driving scanners directly gets a
    fresh one with each :class:`Source` it builds.
    """

    spent: int = 0
    """Bytes decompressed so far."""

    def spend(self, n: int, limits: ScanLimits) -> bool:
        """Count ``n`` more decompressed bytes; ``False`` once the total passes the limit."""
        self.spent += n
        return self.spent <= limits.max_total_bytes

    def exhausted(self, limits: ScanLimits) -> bool:
        """``limits.max_total_bytes`` has been passed: nothing more of the file is decompressed."""
        return self.spent > limits.max_total_bytes


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
    budget: Budget = field(default_factory=Budget, compare=False)
    """The top-level file's tally of decompressed bytes, shared by all its members."""


@dataclass(frozen=True, slots=True)
class Member:
    """An archive member a container scanner hands back to the engine to sniff and scan."""

    name: str
    source: Source
    span: tuple[int, int] | None = None
    """``(offset, size)`` of the member's bytes in its parent, where they are stored there as
    they are (a Keras archive inside a pickle): a zip directory found there is this member's,
    scanned as such, not a second reading of the parent (``scan.polyglot``)."""


class FormatScanner(Protocol):
    """One format's scanner: yields findings, and members for the engine to recurse into."""

    @property
    def formats(self) -> frozenset[Format]:
        """The sniffed formats it handles."""
        ...

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Scan ``source`` without executing it."""
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
