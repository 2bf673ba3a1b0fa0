"""Streams for container members: windows onto a parent stream, and bounded decompression.

A stored member is a *window* (``[start, start + size)`` of its parent, read by seeking, so a
2 GB checkpoint member costs nothing until read). A compressed one is decompressed once into a
temporary file, stopping at the size and ratio limits (zip-bomb guard), and then read from there.
Every byte decompressed is also drawn from the top-level file's :class:`Budget` (against
``ScanLimits.max_total_bytes``), so nesting archives cannot multiply what is decompressed.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from bastion.findings import Location
from bastion.scan.interface import Budget, ScanLimits, Source

__all__ = ["Spilled", "member_source", "read_chunks", "spill", "window"]

_BUFFER: Final = 1 << 16
_CHUNK: Final = 1 << 20
_RATIO_FLOOR: Final = 16 << 20
"""Ratios are only judged once this much has come out (tiny members compress very well)."""
_STOPPED: Final = frozenset({"size", "ratio", "total"})
"""Problems that stop a member at a limit: what came out is not scanned."""


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``[start, start + size)`` of ``base`` (which it owns)."""

    def __init__(self, base: BinaryIO, start: int, size: int) -> None:
        super().__init__()
        self._base, self._start, self._size, self._pos = base, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        self._base.seek(self._start + self._pos)
        data = self._base.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._base.close()
        super().close()


def window(opener: Callable[[], BinaryIO], start: int, size: int) -> Callable[[], BinaryIO]:
    """An ``open`` for a member stored at ``[start, start + size)`` of what ``opener`` opens."""

    def open_window() -> BinaryIO:
        return io.BufferedReader(_Window(opener(), start, size), _BUFFER)

    return open_window


def member_source(parent: Source, name: str, size: int, opener: Callable[[], BinaryIO]) -> Source:
    """The :class:`Source` of member ``name`` of ``parent`` (member chain joined by ``!``).

    It shares ``parent``'s budget: every nesting level draws from the top-level file's tally.
    """
    member = f"{parent.location.member}!{name}" if parent.location.member else name
    return Source(Location(parent.location.path, member), size, opener, parent.depth + 1,
                  parent.budget)


@dataclass(frozen=True, slots=True)
class Spilled:
    """The outcome of decompressing a member into a temporary file."""

    path: str | None
    """The temporary file (``None`` when a limit stopped it)."""
    size: int
    """Bytes written (up to where it stopped)."""
    problem: str | None = None
    """Why it stopped early: ``"size"``, ``"ratio"``, ``"total"`` or a decoder error message.

    ``"total"``: the file's budget of decompressed bytes is spent (this member's share, or
    before it started, in which case nothing was decompressed).
    """


@contextlib.contextmanager
def spill(
    chunks: Iterator[bytes], compressed_size: int, limits: ScanLimits, budget: Budget,
) -> Iterator[Spilled]:
    """Write decompressed ``chunks`` to a temporary file within the limits; delete it after.

    ``budget`` is the top-level file's tally (the enclosing :class:`Source`'s).

    Steps, each stopping it (``Spilled.path`` is then ``None``):

    1. The file's budget (``max_total_bytes``) is already spent: nothing is decompressed.
    2. Each piece is drawn from that budget first; the piece that passes it is the last.
    3. The member's own size and compression ratio limits.
    """
    if budget.exhausted(limits):  # 1.
        yield Spilled(None, 0, "total")
        return
    fd, path = tempfile.mkstemp(prefix="bastion-scan-")
    result: Spilled
    try:
        written = 0
        problem: str | None = None
        with os.fdopen(fd, "wb") as out:
            try:
                for chunk in chunks:
                    written += len(chunk)
                    if not budget.spend(len(chunk), limits):  # 2.
                        problem = "total"
                        break
                    if written > limits.max_member_bytes:  # 3.
                        problem = "size"
                        break
                    if written > _RATIO_FLOOR and written > limits.max_ratio * max(
                        compressed_size, 1
                    ):
                        problem = "ratio"
                        break
                    out.write(chunk)
            except (OSError, EOFError, ValueError) as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
            except Exception as exc:
                problem = f"{exc.__class__.__name__}: {exc}"
        result = Spilled(None if problem in _STOPPED else path, written, problem)
        yield result
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """Read ``stream`` to its end in bounded chunks."""
    while chunk := stream.read(_CHUNK):
        yield chunk
