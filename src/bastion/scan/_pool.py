"""Scanning a list of files in forked worker processes, each keeping to its own part of the list.

Each worker starts on a contiguous share of the list (a directory's files sit together, and so do
their formats) and is handed chunks from the front of it; a worker whose share is done is handed
the back half of the largest share left. So every worker imports the libraries of the formats in
its own part of the tree (NumPy and h5py for Keras files, Jinja for chat templates, ...), not of
the whole tree, and none idles while another has files left.

The workers are forked with :func:`os.fork` and talk to the parent over two pipes each: the
parent writes the ``[start, stop)`` of a worker's next chunk as soon as the worker's results for
the last one arrive (before reading them), the worker writes back each chunk's pickled results.
They inherit the job (its policy's allowlist pickles to megabytes) and the file list, so only
positions and results cross the pipes, and no process pool, queue or management thread is
started (importing ``concurrent.futures`` and ``multiprocessing`` alone took longer than
scanning a hundred files).

A worker that fails raises its exception in the parent, as a serial scan would; one that dies
(a crash in a native library on a hostile file, a kill) stops the scan with a :class:`ScanError`:
its files were not all judged, so nothing is reported as scanned (fail closed).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import signal
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from bastion.findings import Finding
from bastion.scan.interface import ScanError, ScannedFile

__all__ = ["Result", "Shares", "scan_parallel"]

Result = tuple[list[Finding], list[ScannedFile]]
"""One top-level file's findings and the files (it and its members) scanned."""

_CHUNK_MAX: Final = 16
"""Most files handed out at once: few enough for the progress bar and for sharing out the last
files, enough that the pipes are not the cost."""
_RANGE: Final = struct.Struct("<qq")
_HEADER: Final = struct.Struct("<cq")
"""A worker's message: ``R`` (a chunk's results) or ``E`` (the exception it raised), and the
length of the pickle that follows."""


@dataclass
class Shares:
    """Which positions of the list are left, as one ``[lo, hi)`` share per worker.

    Shares are cut between folders where a boundary is near (a top-level folder's first,
    then any folder's): a folder's files tend to share a format, and so the libraries that
    read it, which a worker imports once for all of them.
    """

    bounds: list[int]
    """``lo`` and ``hi`` of each share, flattened."""
    folders: Sequence[tuple[int, int]] = ()
    """Each position's top-level folder and folder, numbered in list order (none: any cut)."""

    @classmethod
    def of(cls, files: Sequence[str], workers: int) -> Shares:
        """Contiguous shares of about equal length."""
        shares = cls([], _folders(files))
        n = len(files)
        cuts = [0, *(shares._cut(0, n, n * k // workers) for k in range(1, workers)), n]
        for k in range(workers):
            shares.bounds += [cuts[k], max(cuts[k], cuts[k + 1])]
        return shares

    def claim(self, k: int) -> range:
        """Worker ``k``'s next chunk: from the front of its share, else from the back half of
        the largest share left (which becomes its own). Empty when every file is handed out."""
        b = self.bounds
        if b[2 * k] >= b[2 * k + 1]:
            victim = max(range(len(b) // 2), key=lambda j: b[2 * j + 1] - b[2 * j])
            lo, hi = b[2 * victim], b[2 * victim + 1]
            if lo >= hi:
                return range(0)
            mid = self._cut(lo, hi, hi - max(1, (hi - lo) // 2))
            b[2 * victim + 1] = mid
            b[2 * k], b[2 * k + 1] = mid, hi
        lo, hi = b[2 * k], b[2 * k + 1]
        size = max(1, min(_CHUNK_MAX, (hi - lo) // 4))
        b[2 * k] = lo + size
        return range(lo, lo + size)

    def _cut(self, lo: int, hi: int, at: int) -> int:
        """A position in ``[lo + 1, hi - 1]`` near ``at`` (within a quarter of the range)
        where a top-level folder, else a folder, begins; ``at`` when there is none."""
        if not self.folders:
            return at
        reach = (hi - lo) // 4
        for level in (0, 1):
            for step in range(reach + 1):
                for c in (at - step, at + step):
                    if lo < c < hi and self.folders[c][level] != self.folders[c - 1][level]:
                        return c
        return at


def _folders(files: Sequence[str]) -> list[tuple[int, int]]:
    """Each file's top-level folder (under the folder all of them share) and folder, numbered
    in order of first appearance."""
    parents = [os.path.dirname(f) for f in files]
    try:
        depth = len(os.path.commonpath(parents).split(os.sep)) if parents else 0
    except ValueError:  # absolute and relative paths mixed: no shared folder
        depth = 0
    numbers: tuple[dict[str, int], dict[str, int]] = ({}, {})
    found = []
    for parent in parents:
        top = os.sep.join(parent.split(os.sep)[:depth + 1])
        found.append((numbers[0].setdefault(top, len(numbers[0])),
                      numbers[1].setdefault(parent, len(numbers[1]))))
    return found


@dataclass
class _Child:
    pid: int
    """0 once reaped."""
    results: int
    """The read end of its results pipe (-1 once closed)."""
    ranges: int
    """The write end of its ranges pipe (-1 once closed)."""
    stopped: bool = False
    """Sent the empty range: it exits after the chunks it holds."""

    def close(self) -> None:
        """Close the parent's ends of its pipes (each once: a number closed twice may by then
        be another file's)."""
        for fd in (self.results, self.ranges):
            if fd >= 0:
                os.close(fd)
        self.results = self.ranges = -1


def scan_parallel(files: Sequence[str], job: Callable[[str], Result], workers: int,
                  progress: Callable[[int], None] | None = None) -> list[Result]:
    """Every file's result, scanned by ``workers`` forked processes (in no particular order).

    ``progress`` is called with the number of files done after each chunk.

    Raises:
        ScanError: a worker died before returning its results.
    """
    shares = Shares.of(files, workers)
    children: dict[int, _Child] = {}
    results: list[Result] = []
    try:
        for k in range(workers):
            children[k] = _fork(k, files, job, children)
        for k, child in children.items():
            _send(child, shares.claim(k))
        with selectors.DefaultSelector() as selector:
            for k, child in children.items():
                selector.register(child.results, selectors.EVENT_READ, k)
            while selector.get_map():
                for key, _ in selector.select():
                    k = key.data
                    child = children[k]
                    message = _read_message(child.results)
                    if message is None:  # it closed its end: it has exited
                        selector.unregister(child.results)
                        _reap(child)
                        continue
                    if not child.stopped:
                        _send(child, shares.claim(k))  # before unpickling: it waits least
                    tag, payload = message
                    if tag == b"E":
                        raise pickle.loads(payload)  # noqa: S301 (our own child's pickle)
                    chunk: list[Result] = pickle.loads(payload)  # noqa: S301 (as above)
                    results += chunk
                    if progress:
                        progress(len(results))
    finally:
        for child in children.values():
            _stop(child)
    if len(results) != len(files):
        raise ScanError(f"{len(files) - len(results)} files were not scanned by the workers")
    return results


def _fork(k: int, files: Sequence[str], job: Callable[[str], Result],
          children: dict[int, _Child]) -> _Child:
    """Start worker ``k``; in the child, run it and exit (never return)."""
    ranges_r, ranges_w = os.pipe()
    results_r, results_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        for fd in (ranges_r, ranges_w, results_r, results_w):
            os.close(fd)
        raise
    if pid == 0:  # the worker
        code = 1
        try:
            for other in children.values():  # its siblings' pipes are not its own
                other.close()
            os.close(ranges_w)
            os.close(results_r)
            _work(files, job, ranges_r, results_w)
            code = 0
        finally:
            os._exit(code)  # never the parent's exit handlers or buffered output
    os.close(ranges_r)
    os.close(results_w)
    return _Child(pid, results_r, ranges_w)


def _work(files: Sequence[str], job: Callable[[str], Result], ranges: int, out: int) -> None:
    """A worker's loop: scan each chunk it is handed and write back its results, until the
    empty range; an exception is written back for the parent to raise."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        data = _read_exactly(ranges, _RANGE.size)
        if data is None:
            return  # the parent is gone
        start, stop = _RANGE.unpack(data)
        if start >= stop:
            return
        try:
            tag, payload = b"R", pickle.dumps([job(files[i]) for i in range(start, stop)],
                                              pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            tag, payload = b"E", _pickled_error(exc)
        _write_all(out, _HEADER.pack(tag, len(payload)) + payload)
        if tag == b"E":
            return


def _pickled_error(exc: Exception) -> bytes:
    """``exc`` for the parent to raise, or a :class:`ScanError` naming it when it does not
    survive pickling."""
    try:
        payload = pickle.dumps(exc, pickle.HIGHEST_PROTOCOL)
        pickle.loads(payload)  # noqa: S301 (made just above)
    except Exception:
        return pickle.dumps(ScanError(
            f"a scan worker failed: {exc.__class__.__name__}: {exc}"[:300]))
    return payload


def _send(child: _Child, chunk: range) -> None:
    if child.stopped:
        return
    child.stopped = not chunk
    _write_all(child.ranges, _RANGE.pack(chunk.start, chunk.stop) if chunk else _RANGE.pack(0, 0))


def _read_message(fd: int) -> tuple[bytes, bytes] | None:
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    tag, length = _HEADER.unpack(header)
    payload = _read_exactly(fd, length)
    if payload is None:
        return None  # it died while writing: _reap reports it
    return tag, payload


def _read_exactly(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``; ``None`` at end of file (the writer is gone)."""
    parts: list[bytes] = []
    while n:
        data = os.read(fd, min(n, 1 << 20))
        if not data:
            return None
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _reap(child: _Child) -> None:
    """Wait for a worker that closed its pipe; one that did not exit cleanly stops the scan."""
    child.close()
    _, status = os.waitpid(child.pid, 0)
    child.pid = 0
    if status:
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        how = f"was killed by signal {signum}" if signum else \
            f"exited with status {os.WEXITSTATUS(status)}"
        raise ScanError(f"a scan worker {how}; its files were not all scanned",
                        hint="scan the files one at a time to find the one it stopped on")


def _stop(child: _Child) -> None:
    """After the scan, or when it is abandoned: close the pipes, end and reap the worker."""
    child.close()
    if child.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        os.waitpid(child.pid, 0)
        child.pid = 0
