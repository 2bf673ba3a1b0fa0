"""Scanning pickle streams: run the machine over each stacked pickle, judge it with the policy.

Rules (each a finding; see ``docs/scan.md``):

1. Every import not on the allowlist: ``pickle.global.dangerous`` (critical: code, files,
   network), ``pickle.global.dotted`` (critical: attribute walk), ``pickle.global.unknown`` (high).
2. Import operands that are not plain strings: ``pickle.global.indeterminate`` (critical).
3. A call whose callable is not an import (the result of another call, a persistent object):
   ``pickle.call.indeterminate`` (critical). ``getattr(owner, "name")`` with an imported owner
   and a constant name (how bound methods and Enum members pickle) is resolved instead, to
   ``owner.name``, and judged as that: ``pickle.getattr.unvetted`` when it is not allowed
   (critical when called or private; see :meth:`Policy.attribute`).
4. A call whose result is dropped (POP, left under the returned value, memo only):
   ``pickle.call.discarded`` — made for its side effect.
5. BUILD on an imported object (``setattr`` on a class, module or function):
   ``pickle.build.global`` (critical).
6. A break in the stream (truncation, invalid opcode, malformed operand) after whatever ran
   before it: ``pickle.stream.*`` (high); a limit hit: ``pickle.limit.*`` (high).
7. Bytes after the last pickle that do not form one: ``pickle.trailing-data`` (medium).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final

from bastion.findings import Finding, Location, Severity
from bastion.scan._rules import CODE_EXECUTION, SUPPLY_CHAIN, finding
from bastion.scan.interface import ScanLimits
from bastion.scan.pickle._machine import (
    OPCODES,
    Analysis,
    BuildHook,
    Call,
    Global,
    Persistent,
    analyse,
    describe,
)
from bastion.scan.pickle.policy import GETATTR, Policy, canonical

__all__ = ["judge", "scan_pickles"]

_REMEDIATE_CODE: Final = (
    "Do not load this file with pickle, torch.load or joblib.load. If you trust its author and "
    "the import is expected, allow it explicitly (--allow module.name) and rescan; better, ask "
    "for the weights in safetensors or ONNX."
)
_PROBLEM_SEVERITY: Final = {
    "pickle.global.indeterminate": Severity.CRITICAL,
    "pickle.call.method-on-global": Severity.CRITICAL,
    "pickle.global.extension": Severity.HIGH,
}
_BREAK_DETAIL: Final = (
    "The unpickler stops with an error here, but every opcode before this point has already "
    "run: a payload placed before a deliberate break still executes."
)


def scan_pickles(
    stream: BinaryIO,
    location: Location,
    limits: ScanLimits,
    policy: Policy,
    *,
    start: int = 0,
    end: int,
    count: int | None = None,
    on_build: BuildHook | None = None,
) -> Iterator[Finding]:
    """Scan the pickles stacked in ``stream[start:end]``: ``count`` of them, or all there are."""
    pos, index = start, 0
    while pos < end and (count is None or index < count):
        if index and count is None:
            stream.seek(pos)
            first = stream.read(1)
            if not first or first[0] not in OPCODES:
                yield _trailing(location, pos, end)
                return
        with _collector_relaxed():
            a = analyse(stream, pos, end, max_ops=limits.max_pickle_ops,
                        max_memo=limits.max_memo, timeout_s=limits.timeout_s, on_build=on_build)
            trailing = bool(index) and count is None and not a.complete and not a.globals \
                and not a.calls
            findings = [] if trailing else list(judge(a, index, location, policy))
            complete, after = a.complete, a.end
            del a  # freed here, before the collector's threshold comes back
        if trailing:
            yield _trailing(location, pos, end)  # bytes after the last pickle, not another one
            return
        yield from findings
        if not complete:
            return
        pos, index = after, index + 1
    if count is not None and index < count:
        yield finding(
            "pickle.stream.truncated", Severity.HIGH,
            f"expected {count} stacked pickles, found {index}",
            Location(location.path, location.member, pos), detail=_BREAK_DETAIL,
        )


_RELAXED_THRESHOLD: Final = 100_000
"""The collector's young-generation threshold while pickles are scanned (CPython's is 700)."""


class _RelaxedCollector:
    """Few cyclic garbage collections while a pickle is interpreted and judged.

    The machine builds thousands of small objects (a checkpoint's calls, tuples and memo) and
    keeps them all until the analysis is dropped, so the collector's passes over them free
    nothing: about 0.3 ms of a 5 ms checkpoint scan. With the young-generation threshold raised,
    a checkpoint's scan runs without one and its objects, dropped before the threshold comes
    back, go by reference counting. The collector is never switched off: a hostile pickle
    that runs for seconds still meets it every 100,000 allocations, and so do other threads.
    Scans in several threads share one raised threshold; the last to finish restores the
    caller's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scans = 0
        self._saved: tuple[int, ...] = ()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if not self._scans:
                self._saved = gc.get_threshold()
                gc.set_threshold(max(_RELAXED_THRESHOLD, self._saved[0]), *self._saved[1:])
            self._scans += 1
        try:
            yield
        finally:
            with self._lock:
                self._scans -= 1
                if not self._scans:
                    gc.set_threshold(*self._saved)


_collector_relaxed = _RelaxedCollector()


def _trailing(location: Location, pos: int, end: int) -> Finding:
    return finding(
        "pickle.trailing-data", Severity.MEDIUM,
        f"{end - pos} bytes after the last pickle are not a pickle",
        Location(location.path, location.member, pos),
        detail="A loader that reads several pickles, or a tool that reads this file "
        "differently, may interpret bytes the scan could not.",
        evidence={"bytes": end - pos},
    )


def judge(a: Analysis, index: int, location: Location, policy: Policy) -> Iterator[Finding]:
    """The findings for one interpreted pickle (rules 1-6), numbered ``index`` in its stream."""
    where = f"pickle #{index + 1}" if index else "pickle"

    def at(offset: int) -> Location:
        return Location(location.path, location.member, offset)

    reaches = _getattr_reaches(a)
    # 1. imports
    reported: dict[str, Global] = {}
    called: set[int] | None = None  # the imports that are called, once one is reported
    counts: dict[str, int] = {}
    for g in a.globals:
        if g.opcode.startswith("EXT") or not g.known:
            continue  # reported as pickle.global.extension / .indeterminate
        if id(g) in reaches.resolved_globals:
            continue  # each call of this getattr is judged as the attribute it reaches (3)
        v = policy.verdict(g.module, g.name, g.proto)
        if v.allowed:
            continue
        counts[v.qualified] = counts.get(v.qualified, 0) + 1
        if v.qualified in reported:
            continue
        reported[v.qualified] = g
        rule = (
            "pickle.global.dotted" if "." in v.name
            else "pickle.global.dangerous" if v.severity is Severity.CRITICAL
            else "pickle.global.unknown"
        )
        if called is None:
            called = {id(c.func) for c in a.calls}
        verb = "imports and calls" if id(g) in called else "imports"
        yield finding(
            rule, v.severity, f"{where} {verb} {v.qualified}", at(g.offset),
            detail=f"{g.opcode} makes the unpickler import {v.qualified}, which {v.reason}.",
            remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
            evidence={"global": v.qualified, "module": v.module, "name": v.name,
                      "opcode": g.opcode, "as_written": f"{g.module}.{g.name}",
                      "protocol": g.proto},
        )
    # 2, 6. structural problems
    for p in a.problems:
        severity = _PROBLEM_SEVERITY.get(p.rule, Severity.HIGH)
        yield finding(
            p.rule, severity, f"{where}: {p.message}", at(p.offset),
            detail=_BREAK_DETAIL if p.rule.startswith("pickle.stream") else
            "The scanner cannot tell what this would import or call, so it cannot vouch for it.",
            techniques=CODE_EXECUTION if severity is Severity.CRITICAL else SUPPLY_CHAIN,
            evidence=dict(p.evidence),
        )
    # 3, 4. calls
    complete = a.complete
    for c in a.calls:
        func = c.func
        reached = reaches.targets.get(id(c))
        if reached is not None:
            yield from _judge_getattr(reached, c, id(c) in reaches.called, where, at, policy)
            if c.used or not complete:
                continue
        elif type(func) is Global:  # almost every call: nothing more to resolve
            if c.used or not complete:
                continue
        elif id(func) in reaches.targets:
            continue  # a call of getattr's result: judged with that getattr above
        else:
            func = _resolve(func)
        if type(func) is not Global:
            yield finding(
                "pickle.call.indeterminate", Severity.CRITICAL,
                f"{where}: {c.opcode} calls a value built at load time, not an import",
                at(c.offset),
                detail="The callable is the result of another call or a loader-provided "
                "object (the getattr(...)(...) pattern); what runs cannot be vetted.",
                remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
                evidence={"opcode": c.opcode, "callable": describe(func)},
            )
        elif not c.used and complete:
            v = policy.verdict(func.module, func.name, func.proto)
            yield finding(
                "pickle.call.discarded",
                Severity.MEDIUM if v.allowed else Severity.HIGH,
                f"{where}: the result of calling {v.qualified} is thrown away", at(c.offset),
                detail="A call whose result is never used was made for its side effect.",
                remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
                evidence={"opcode": c.opcode, "callable": v.qualified},
            )
    # 5. BUILD on imported objects
    for built, offset in a.builds:
        target = _resolve(built)
        if id(target) in reaches.targets:
            owner, attribute = reaches.targets[id(target)]
            yield finding(
                "pickle.build.global", Severity.CRITICAL,
                f"{where}: BUILD sets attributes on {owner.module}.{owner.name}.{attribute}",
                at(offset),
                detail="BUILD on an attribute fetched from an imported object rewrites that "
                "shared object in the loading process.",
                remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
                evidence={"target": f"{owner.module}.{owner.name}.{attribute}"},
            )
        elif type(target) is Global:
            yield finding(
                "pickle.build.global", Severity.CRITICAL,
                f"{where}: BUILD sets attributes on the imported {target.module}.{target.name}",
                at(offset),
                detail="BUILD on a class, module or function rewrites it (setattr) in the "
                "loading process, e.g. replacing a function that later code calls.",
                remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
                evidence={"target": f"{target.module}.{target.name}"},
            )
        elif type(target) is not Call:
            yield finding(
                "pickle.build.unusual-target", Severity.HIGH,
                f"{where}: BUILD on {describe(target)}", at(offset),
                detail="BUILD on something that is not an object made by this pickle.",
                evidence={"target": describe(target)},
            )



class _Reaches:
    """The ``getattr(owner, "name")`` calls of one pickle that can be resolved statically."""

    __slots__ = ("called", "resolved_globals", "targets")

    def __init__(self) -> None:
        self.targets: dict[int, tuple[Global, str]] = {}
        """id(call) -> (owner, attribute)."""
        self.called: set[int] = set()
        """ids of those calls whose result is itself called."""
        self.resolved_globals: set[int] = set()
        """ids of ``builtins.getattr`` imports every call of which resolves."""


def _getattr_reaches(a: Analysis) -> _Reaches:
    reaches = _Reaches()
    unresolved: set[int] = set()
    for c in a.calls:
        func = c.func
        if type(func) is not Global or canonical(func.module, func.name, func.proto) != GETATTR:
            continue
        args = c.args
        if (type(args) is tuple and len(args) == 2 and type(args[0]) is Global
                and args[0].known and type(args[1]) is str):
            reaches.targets[id(c)] = (args[0], args[1])
            reaches.resolved_globals.add(id(func))
        else:
            unresolved.add(id(func))
    reaches.resolved_globals -= unresolved
    if reaches.targets:
        reaches.called = {id(c.func) for c in a.calls if id(c.func) in reaches.targets}
    return reaches


def _judge_getattr(
    reached: tuple[Global, str], c: Call, called: bool, where: str,
    at: Callable[[int], Location], policy: Policy,
) -> Iterator[Finding]:
    owner, attribute = reached
    v = policy.attribute(owner.module, owner.name, attribute, owner.proto, called=called)
    if v.allowed or (not called and not policy.verdict(owner.module, owner.name, owner.proto)
                     .allowed and not attribute.startswith("_")):
        return  # allowed, or the owner's own import is the finding (rule 1)
    verb = "calls" if called else "reads"
    yield finding(
        "pickle.getattr.unvetted", v.severity, f"{where} {verb} {v.qualified} through getattr",
        at(c.offset),
        detail=f"getattr({owner.module}.{owner.name}, {attribute!r}) is {v.qualified}: "
        f"{v.reason}.",
        remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
        evidence={"global": v.qualified, "owner": f"{owner.module}.{owner.name}",
                  "attribute": attribute, "called": called},
    )


def _resolve(value: object) -> object:
    """PyTorch's legacy ``persistent_load`` returns ``pid[1]`` for ``("module", cls, ...)``."""
    if isinstance(value, Persistent):
        pid = value.pid
        if type(pid) is tuple and len(pid) >= 2 and pid[0] == "module" and type(pid[1]) is Global:
            return pid[1]
    return value
