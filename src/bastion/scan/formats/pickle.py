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
from bastion.scan.formats._io import member_source, window
from bastion.scan.interface import Format, FormatScanner, Member, ScanLimits, Source
from bastion.scan.pickle import Policy, scan_pickles
from bastion.scan.pickle._machine import (
    Analysis,
    BrokenStreamError,
    Call,
    DictValue,
    Global,
    Reader,
    analyse,
    describe,
)
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
        archives: list[tuple[int, int]] = []
        with source.open() as stream:
            yield from scan_pickles(stream, source.location, limits, self.policy,
                                    end=source.size, on_build=hook, archives=archives)
        yield from hook.findings
        for offset, size in sorted(set(archives)):  # Keras Model._unpickle_model's archive
            name = f"<keras archive @ {offset}>"
            yield Member(name, member_source(source, name, size, window(source.open, offset,
                                                                        size)), (offset, size))


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
        interpreting them. The reading starts afresh (empty stack and memo), so whatever it
        interprets uses only values the array bytes themselves made, as the real load would;
        it ends at the first opcode that breaks the real load (:func:`_executed_until`).
        Judged up to there, as for any pickle:

        1. imports not on the allowlist (called or not);
        2. calls of a value made at load time, not of an import (``getattr(...)(...)``);
        3. BUILD on an imported object (``setattr`` on a class).

        Random array data never gets as far as an import (it breaks within a few opcodes), and
        2 and 3 need one, so none of them fires on real arrays. Discarded calls, persistent
        ids and structural breaks are not judged: array data produces them by chance.
        """
        start = reader.pos
        hidden = analyse(reader.stream, start, reader.end, max_ops=10_000, timeout_s=5.0)
        until = _executed_until(hidden)
        calls = [c for c in hidden.calls if c.offset < until]
        called = {id(c.func) for c in calls}
        reported: set[str] = set()
        for g in hidden.globals:  # 1.
            verdict = self.policy.verdict(g.module, g.name, g.proto)
            if g.offset >= until or verdict.allowed or verdict.qualified in reported:
                continue
            reported.add(verdict.qualified)
            verb = "importing and calling" if id(g) in called else "importing"
            self._hidden(
                max(verdict.severity, Severity.HIGH), f"{verb} {verdict.qualified}", g.offset,
                start, {"global": verdict.qualified, "opcode": g.opcode},
            )
        for c in calls:  # 2.
            if type(c.func) is Call:
                self._hidden(
                    Severity.CRITICAL, f"calling {describe(c.func)} (a value built at load "
                    "time, not an import)", c.offset, start,
                    {"opcode": c.opcode, "callable": describe(c.func)},
                )
        for target, offset in hidden.builds:  # 3.
            if offset < until and type(target) is Global:
                self._hidden(
                    Severity.CRITICAL, f"setting attributes on the imported "
                    f"{target.module}.{target.name} (BUILD)", offset, start,
                    {"opcode": "BUILD", "target": f"{target.module}.{target.name}"},
                )

    def _hidden(
        self, severity: Severity, what: str, offset: int, start: int,
        evidence: dict[str, object],
    ) -> None:
        self.findings.append(finding(
            "joblib.array.hidden-pickle", severity,
            f"a joblib array's bytes also read as a pickle {what}",
            replace(self.location, offset=offset),
            detail="joblib.load skips these bytes, but pickle.load on the same file "
            "interprets them as opcodes and would do this.",
            techniques=CODE_EXECUTION, evidence={**evidence, "array_offset": start},
        ))


def _executed_until(a: Analysis) -> int:
    """The offset of the first opcode at which the real ``pickle.load`` certainly fails.

    The symbolic machine carries on where CPython raises:

    1. an import whose operands are not strings (``STACK_GLOBAL requires str``);
    2. an extension code (``EXT1``/``2``/``4``): none is registered unless the loading process
       calls ``copyreg.add_extension`` itself (``unregistered extension code``);
    3. an import of an empty module name or one holding a NUL byte, which no finder can
       find (a small integer array starting with ``c`` reads as ``GLOBAL "\\x00..."``);
    4. a call of a value that cannot be called (a number, string, tuple, container or
       persistent id: ``TypeError``).

    Nothing after such a point runs. An import or a call result may be callable.
    """
    until = a.end
    for g in a.globals:
        if not g.known or g.opcode.startswith("EXT") or not g.module or "\x00" in g.module:
            until = min(until, g.offset)
            break
    for c in a.calls:
        if type(c.func) is not Global and type(c.func) is not Call:
            until = min(until, c.offset)
            break
    return until


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
