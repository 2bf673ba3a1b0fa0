"""Plain pickles (every pickle stacked in the file) and joblib dumps (arrays written inline).

joblib writes each NumPy array's bytes straight into the pickle stream after the BUILD of a
``joblib.numpy_pickle.NumpyArrayWrapper``; an object array is written as a nested pickle
instead. The scanner follows joblib's reader: it skips the raw bytes by seeking and scans the
nested pickles, so nothing hides in "array data".
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from bastion.findings import Finding, Location, Severity
from bastion.scan._rules import CODE_EXECUTION, finding
from bastion.scan.interface import Format, FormatScanner, Member, ScanLimits, Source
from bastion.scan.pickle import Policy, scan_pickles
from bastion.scan.pickle._machine import BrokenStreamError, Call, DictValue, Global, Reader, analyse
from bastion.scan.pickle._stream import judge
from bastion.scan.pickle.policy import canonical

__all__ = ["PickleScanner"]

_WRAPPER: Final = ("joblib.numpy_pickle", "NumpyArrayWrapper")


@dataclass(frozen=True, slots=True)
class PickleScanner:
    """Scans pickle and joblib files: every stacked pickle, then any trailing bytes."""

    policy: Policy = field(default_factory=Policy.default)
    formats: frozenset[Format] = frozenset({Format.PICKLE, Format.JOBLIB})

    def with_policy(self, policy: Policy) -> FormatScanner:
        """This scanner under ``policy``."""
        return replace(self, policy=policy)

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Scan every pickle in ``source``; joblib arrays are skipped as joblib reads them."""
        hook = _JoblibArrays(source.location, limits, self.policy)
        with source.open() as stream:
            yield from scan_pickles(stream, source.location, limits, self.policy,
                                    end=source.size, on_build=hook)
        yield from hook.findings


@dataclass
class _JoblibArrays:
    """BUILD hook: after a NumpyArrayWrapper's state is set, consume its array as joblib does."""

    location: Location
    limits: ScanLimits
    policy: Policy
    findings: list[Finding] = field(default_factory=list)

    def __call__(self, target: Call, state: object, reader: Reader) -> None:
        func = target.func
        if type(func) is not Global or canonical(func.module, func.name, func.proto) != _WRAPPER:
            return
        layout = _array_layout(state)
        if layout is None:
            raise BrokenStreamError(
                "joblib.array.undetermined",
                "a joblib array's dtype or shape cannot be read, so where the pickle resumes "
                "after its bytes is unknown; the rest is not scanned",
            )
        nbytes, has_object, aligned = layout
        if has_object:  # joblib calls pickle.load on the stream here: a nested pickle
            a = analyse(reader.stream, reader.pos, reader.end, max_ops=self.limits.max_pickle_ops,
                        max_memo=self.limits.max_memo, timeout_s=self.limits.timeout_s)
            self.findings.extend(judge(a, 0, self.location, self.policy))
            if not a.complete:
                raise BrokenStreamError("joblib.array.nested", "a joblib object array is broken")
            reader.skip(a.end - reader.pos)
            return
        self._second_reading(reader)
        if aligned:
            padding = reader.read(1)[0]
            reader.skip(padding)
        reader.skip(nbytes)

    def _second_reading(self, reader: Reader) -> None:
        """Read the array bytes as opcodes too: plain ``pickle.load`` would run them.

        joblib skips an array's bytes; ``pickle.load`` on the same file carries on
        interpreting them. Random array data breaks within a few opcodes; a pickle hidden
        there does not, and its imports are reported.
        """
        start = reader.pos
        hidden = analyse(reader.stream, start, reader.end, max_ops=10_000, timeout_s=5.0)
        for g in hidden.globals:
            verdict = self.policy.verdict(g.module, g.name, g.proto)
            if g.known and not verdict.allowed:
                self.findings.append(finding(
                    "joblib.array.hidden-pickle", max(verdict.severity, Severity.HIGH),
                    f"a joblib array's bytes also read as a pickle importing {verdict.qualified}",
                    replace(self.location, offset=g.offset),
                    detail="joblib.load skips these bytes, but pickle.load on the same file "
                    "interprets them as opcodes and would run this import.",
                    techniques=CODE_EXECUTION,
                    evidence={"global": verdict.qualified, "array_offset": start},
                ))


def _array_layout(state: object) -> tuple[int, bool, bool] | None:
    """(bytes of data, holds objects, padded) from a NumpyArrayWrapper state, or None."""
    if not isinstance(state, DictValue):
        return None
    shape, dtype = state.get("shape"), state.get("dtype")
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape):
        return None
    if type(dtype) is not Call or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    dstate, code = dtype.state, dtype.args[0]
    if type(dstate) is not tuple or len(dstate) < 8 or type(code) is not str:
        return None
    elsize, flags = dstate[5], dstate[7]
    if type(elsize) is not int or type(flags) is not int:
        return None
    has_object = bool(flags & 1)
    if elsize <= 0:
        digits = "".join(ch for ch in code if ch.isdigit())
        if not digits:
            return None
        elsize = int(digits)
    aligned = state.get("numpy_array_alignment_bytes") is not None
    return math.prod(shape) * elsize, has_object, aligned
