"""Scanning a list of files in forked worker processes, each keeping to its own part of the list.

Each worker starts on a contiguous share of the list (a directory's files sit together, and so do
their formats) and is handed chunks from the front of it; a worker whose share is done is handed
the back half of the largest share left, cut between folders where it can be. So every worker
imports the libraries of the formats in its own part of the tree (NumPy and h5py for Keras files,
Jinja for chat templates, ...), not of the whole tree. A chunk that takes longer than
:data:`_CHUNK_S` comes back part done and its rest is shared out again, so none idles long while
another has files left; and a worker waits rather than take the last few files of the folder
another is reading (:data:`_STEAL_S`), which would cost it that folder's imports.

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
import sys
import time
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
_CHUNK_S: Final = 0.01
"""A worker hands back the rest of a chunk that has taken longer than this (a large pickle, a
first file that imports NumPy), so that another worker may take some of it."""
_STEAL_S: Final = 0.1
"""A worker whose share is done waits rather than take half of another's when what is left
there is the rest of the folder that one is reading and looks like less than this much work
(at that one's pace): half of it would save less than the thief may spend importing the
libraries for those files (NumPy and h5py: 0.08 s), which the other has loaded. It takes its
half once there is more, or stops once every file is handed out."""
_HEADER: Final = struct.Struct("<cqqdq")
"""A worker's message: ``R`` (a chunk's results) or ``E`` (the exception it raised), how many of
the chunk's files it scanned, how many of those imported nothing and the seconds they took (its
pace, without a first file's imports), and the length of the pickle that follows."""


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
        cuts = [0]
        for k in range(1, workers):  # within a quarter of a share of the even cut
            cuts.append(shares._cut(cuts[-1], n, max(cuts[-1] + 1, n * k // workers),
                                    n // (4 * workers)))
        cuts.append(n)
        for k in range(workers):
            shares.bounds += [cuts[k], max(cuts[k], cuts[k + 1])]
        return shares

    def claim(self, k: int, *, steal: bool = True) -> range:
        """Worker ``k``'s next chunk: from the front of its share, else (``steal``) from the
        back half of the largest share left, which becomes its own. Empty when there is none."""
        b = self.bounds
        if b[2 * k] >= b[2 * k + 1]:
            victim = self.largest()
            lo, hi = b[2 * victim], b[2 * victim + 1]
            if lo >= hi or not steal:
                return range(0)
            mid = self._cut(lo, hi, hi - max(1, (hi - lo) // 2), (hi - lo) // 4)
            b[2 * victim + 1] = mid
            b[2 * k], b[2 * k + 1] = mid, hi
        lo, hi = b[2 * k], b[2 * k + 1]
        size = max(1, min(_CHUNK_MAX, (hi - lo) // 4))
        b[2 * k] = lo + size
        return range(lo, lo + size)

    def largest(self) -> int:
        """The worker whose share has the most files left."""
        b = self.bounds
        return max(range(len(b) // 2), key=lambda j: b[2 * j + 1] - b[2 * j])

    def left(self, k: int) -> int:
        """Files left in worker ``k``'s share."""
        return max(0, self.bounds[2 * k + 1] - self.bounds[2 * k])

    def within_one_folder(self, k: int) -> bool:
        """Whether what is left of worker ``k``'s share lies in the folder of the chunk it was
        last handed (which its libraries are now loaded for)."""
        lo, hi = self.bounds[2 * k], self.bounds[2 * k + 1]
        return bool(self.folders) and 0 < lo < hi and \
            self.folders[lo - 1][1] == self.folders[hi - 1][1]

    def give_back(self, k: int, rest: range) -> None:
        """The end of worker ``k``'s last chunk, not scanned: the front of its share again.
        (Nothing else takes from the front of a share, so the share begins where it ended.)"""
        if rest:
            self.bounds[2 * k] = rest.start

    def _cut(self, lo: int, hi: int, at: int, reach: int) -> int:
        """A position in ``[lo + 1, hi - 1]`` within ``reach`` of ``at`` where a top-level
        folder, else a folder, begins; ``at`` when there is none."""
        if not self.folders:
            return at
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
    chunk: range = range(0)
    """The chunk it is scanning."""
    pace: float | None = None
    """Seconds per file, over its last chunk's files that imported nothing (unknown: None)."""
    stopped: bool = False
    """Sent the empty range: it exits after the chunk it holds."""

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
        waiting: set[int] = set()
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
                    tag, done, plain, plain_s, payload = message
                    if tag == b"E":  # it has stopped: nothing more is sent to it
                        raise pickle.loads(payload)  # noqa: S301 (our own child's pickle)
                    shares.give_back(k, child.chunk[done:])
                    if plain:
                        child.pace = plain_s / plain
                    waiting.add(k)
                    for w in sorted(waiting):  # before unpickling: they wait least
                        if _hand_out(w, shares, children):
                            waiting.discard(w)
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


def _hand_out(k: int, shares: Shares, children: dict[int, _Child]) -> bool:
    """Send worker ``k`` its next chunk, or the empty range when none is left; ``False`` when
    it should wait (see :data:`_STEAL_S`)."""
    chunk = shares.claim(k, steal=False)
    if not chunk:
        victim = shares.largest()
        pace = children[victim].pace
        if pace is not None and shares.within_one_folder(victim) \
                and shares.left(victim) * pace < _STEAL_S:
            return False
        chunk = shares.claim(k)
    _send(children[k], chunk)
    return True


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
        results: list[Result] = []
        plain, plain_s = 0, 0.0
        try:
            deadline = time.monotonic() + _CHUNK_S
            for i in range(start, stop):
                modules, began = len(sys.modules), time.monotonic()
                results.append(job(files[i]))
                now = time.monotonic()
                if len(sys.modules) == modules:
                    plain, plain_s = plain + 1, plain_s + now - began
                if now > deadline:
                    break  # the rest goes back to be shared out
            tag, payload = b"R", pickle.dumps(results, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            tag, payload = b"E", _pickled_error(exc)
        _write_all(out, _HEADER.pack(tag, len(results), plain, plain_s, len(payload)) + payload)
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
    child.chunk = chunk
    try:
        _write_all(child.ranges, _RANGE.pack(chunk.start, chunk.stop) if chunk else
                   _RANGE.pack(0, 0))
    except BrokenPipeError:
        child.stopped = True  # it died: its pipe's end of file and _reap report it


def _read_message(fd: int) -> tuple[bytes, int, int, float, bytes] | None:
    header = _read_exactly(fd, _HEADER.size)
    if header is None:
        return None
    tag, done, plain, plain_s, length = _HEADER.unpack(header)
    payload = _read_exactly(fd, length)
    if payload is None:
        return None  # it died while writing: _reap reports it
    return tag, done, plain, plain_s, payload


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
