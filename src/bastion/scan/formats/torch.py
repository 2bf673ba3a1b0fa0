"""PyTorch's legacy (pre-1.6) checkpoint: five pickles in a row, then raw storage bytes.

``torch.load`` reads the magic number, the protocol version, system info, the object itself
and the list of storage keys, each with ``pickle.load``; the storages that follow are read as
raw bytes. All five pickles are scanned (scanners that read only the first miss the payload).
PyTorch zip checkpoints are containers and live in :mod:`bastion.scan.formats.archives`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from bastion.findings import Finding
from bastion.scan.interface import Format, FormatScanner, Member, ScanLimits, Source
from bastion.scan.pickle import Policy, scan_pickles

__all__ = ["TorchLegacyScanner"]

LEGACY_PICKLES: Final = 5
"""magic number, protocol version, sys info, the object, storage keys."""


@dataclass(frozen=True, slots=True)
class TorchLegacyScanner:
    """The five pickles of ``torch.save(..., _use_new_zipfile_serialization=False)``."""

    policy: Policy = field(default_factory=Policy.default)
    formats: frozenset[Format] = frozenset({Format.TORCH_LEGACY})

    def with_policy(self, policy: Policy) -> FormatScanner:
        """This scanner under ``policy``."""
        return replace(self, policy=policy)

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Scan the pickles ``torch.load`` would unpickle; the storage bytes after them are data."""
        with source.open() as stream:
            yield from scan_pickles(stream, source.location, limits, self.policy,
                                    end=source.size, count=LEGACY_PICKLES)
