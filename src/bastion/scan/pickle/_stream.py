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
8. ``torch.storage._load_from_bytes(b)`` with constant bytes ``b`` (a tensor pickled outside
   ``torch.save``): ``b`` is scanned as the legacy torch stream ``torch.load`` reads, and its
   findings are reported inside the call instead of the import; bytes that are not such a
   stream: ``pickle.torch-bytes.unrecognised`` (high).
"""

from __future__ import annotations

import contextlib
import gc
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
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
from bastion.scan.pickle._values import DictValue, ListValue, Opaque
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
    "pickle.state.code": Severity.CRITICAL,
    "pickle.global.extension": Severity.HIGH,
}
_STATE_DETAIL: Final = (
    "A scipy.stats distribution (and any rv_generic subclass) exec()s its state's "
    "_parse_arg_template when unpickled; this one is not the argument parser scipy writes, so "
    "loading the file runs it."
)
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
            findings: list[Finding] = []
            if not trailing:  # what torch.storage._load_from_bytes would load, then the rest
                nested, vetted = _load_from_bytes(a, index, stream, location, limits, policy)
                findings = [*judge(a, index, location, policy, vetted=vetted), *nested]
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


_LOAD_FROM_BYTES: Final = ("torch.storage", "_load_from_bytes")
"""``torch.storage._load_from_bytes(b)``: ``torch.load(io.BytesIO(b), weights_only=False)``,
how a tensor's storage pickles outside ``torch.save`` (plain ``pickle``, joblib)."""
_TORCH_MAGIC: Final = 0x1950A86A20F9469CFC6C
"""The legacy format's first pickle (``torch.serialization.MAGIC_NUMBER``; ``sniff`` has it too)."""
_TORCH_PICKLES: Final = 5
"""magic number, protocol version, sys info, the object, storage keys (``formats/torch.py``)."""
_SLACK: Final = 64
"""Opcodes a pickler writes between a kept payload and the call that takes it (MEMOIZE,
TUPLE1, a FRAME header)."""
_INSIDE_DETAIL: Final = (
    "torch.storage._load_from_bytes(b) runs torch.load(io.BytesIO(b), weights_only=False) on "
    "constant bytes of this pickle; this is what those bytes do when it runs."
)


def _load_from_bytes(
    a: Analysis, index: int, stream: BinaryIO, location: Location, limits: ScanLimits,
    policy: Policy,
) -> tuple[list[Finding], frozenset[int]]:
    """Scan what each ``torch.storage._load_from_bytes(b)`` call of ``a`` would load.

    Returns the findings of the nested legacy streams, located in the outer file, and the
    ids of the ``_load_from_bytes`` imports that :func:`judge` need not report, because
    what they do has been judged instead. Steps:

    1. find the imports of ``torch.storage._load_from_bytes`` (none in almost every pickle);
    2. for each call of one, take its argument: constant bytes (kept, or an ``Opaque``
       payload that can be read again); anything else leaves the import unvetted;
    3. scan those bytes as ``torch.load`` reads them (:func:`_scan_payload`), once per
       payload, up to ``limits.max_depth`` levels of nesting;
    4. vet an import only when it is called, every call of it was scanned, and it reaches
       nothing else (an argument, a state, the result): a reference passed on could be
       called with bytes made at load time (``torch._tensor._rebuild_from_type_v2(func,
       ...)`` calls ``func``). Containers keep their first items only; a reference past
       them is passed on as data, not called by an allowed reconstructor.
    """
    # 1.
    targets = {id(g) for g in a.globals if g.name == _LOAD_FROM_BYTES[1] and g.known
               and canonical(g.module, g.name, g.proto) == _LOAD_FROM_BYTES}
    if not targets:
        return [], frozenset()
    where = f"pickle #{index + 1}, " if index else ""
    findings: list[Finding] = []
    unvetted: set[int] = set()
    called: set[int] = set()
    scanned: dict[int, bool] = {}  # id(payload) -> whether its scan vets the call
    for c in a.calls:
        func = c.func
        if type(func) is not Global or id(func) not in targets:
            continue
        called.add(id(func))
        # 2.
        payload = _payload(c)
        if payload is None or limits.max_depth <= 0:
            unvetted.add(id(func))
            continue
        # 3.
        if id(payload) not in scanned:
            ok, found = _scan_payload(payload, c, a.start, stream, location, limits, policy)
            scanned[id(payload)] = ok
            findings.extend(_inside(f, c, where) for f in found)
        if not scanned[id(payload)]:
            unvetted.add(id(func))
    # 4.
    vetted = targets & called - unvetted
    if vetted:
        values: list[object] = [a.result, *(b for b, _ in a.builds)]
        for c in a.calls:
            if type(c.func) is not Global or id(c.func) not in vetted:
                values.append(c.func)
            values.append(c.args)
            values.append(c.state)
        vetted -= _mentioned(values, vetted)
    return findings, frozenset(vetted)


def _payload(c: Call) -> bytes | Opaque | None:
    """The constant bytes ``c`` calls its callable with, alone: kept, or a payload that can
    be read again (``BINBYTES``/``BINBYTES8``/``BYTEARRAY8``). ``NEWOBJ`` is left out: it
    needs a class, so nothing runs."""
    args = c.args
    if c.opcode not in ("REDUCE", "OBJ", "INST") or type(args) is not tuple or len(args) != 1:
        return None
    value = args[0]
    if type(value) is bytes:
        return value
    if type(value) is Opaque and value.kind in ("bytes", "bytearray") and value.offset is not None:
        return value
    return _latin1(value)


def _latin1(value: object) -> bytes | None:
    """Bytes under protocol 0-2, which has no bytes opcode: ``_codecs.encode(text, "latin1")``."""
    if type(value) is not Call or type(value.func) is not Global:
        return None
    func, args = value.func, value.args
    if canonical(func.module, func.name, func.proto) != ("_codecs", "encode") or not (
            type(args) is tuple and len(args) == 2 and type(args[0]) is str
            and args[1] in ("latin1", "latin-1")):
        return None
    try:
        return args[0].encode("latin-1")
    except UnicodeEncodeError:
        return None


def _scan_payload(
    payload: bytes | Opaque, c: Call, floor: int, stream: BinaryIO, location: Location,
    limits: ScanLimits, policy: Policy,
) -> tuple[bool, list[Finding]]:
    """Scan one payload as ``torch.load(io.BytesIO(payload))`` reads it: a zip checkpoint, or
    the legacy stream of five pickles (the first runs before its magic number is checked).

    Returns whether the scan covers what the call does (not for a zip, which is not read
    here), and the findings, located in the outer file where the payload is found there.
    """
    nested = replace(limits, max_depth=limits.max_depth - 1)
    source: BinaryIO = stream
    if isinstance(payload, Opaque):
        start = payload.offset or 0  # never None here (_payload)
        end = start + payload.size
    else:
        located = _locate(stream, payload, c.offset, floor)
        if located is None:  # from the memo, far back: scanned as bytes, reported at the call
            source, start, end = io.BytesIO(payload), 0, len(payload)
        else:
            start, end = located, located + len(payload)
    found: list[Finding] = []
    source.seek(start)
    head = source.read(4)
    first = analyse(source, start, end, max_ops=64, max_memo=64, timeout_s=limits.timeout_s)
    legacy = first.complete and type(first.result) is int and first.result == _TORCH_MAGIC
    if not legacy:
        zipped = head == b"PK\x03\x04"
        found.append(finding(
            "pickle.torch-bytes.unrecognised", Severity.HIGH,
            "the bytes torch.storage._load_from_bytes loads are "
            + ("a zip archive, not scanned here" if zipped
               else "not a legacy PyTorch stream (no magic number)"),
            Location(location.path, location.member, start),
            detail="torch.load reads a zip archive as a checkpoint, with the full unpickler; "
            "anything else it unpickles once before it checks the magic number. Bytes that "
            "are not what torch.save writes here have no benign reason to be."
            if zipped else "torch.load unpickles the first pickle of these bytes before it "
            "checks the magic number, so that pickle is scanned; bytes that are not what "
            "torch.save writes here have no benign reason to be.",
            remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
            evidence={"bytes": end - start, "zip": zipped},
        ))
        if zipped:
            return False, _relocated(found, source is not stream, c.offset, start)
    found.extend(scan_pickles(source, location, nested, policy, start=start, end=end,
                              count=_TORCH_PICKLES if legacy else 1))
    return True, _relocated(found, source is not stream, c.offset, start)


def _locate(stream: BinaryIO, payload: bytes, before: int, floor: int) -> int | None:
    """Where the kept ``payload`` taken by the call at ``before`` lies in ``stream``: just in
    front of the call, as a pickler writes it; ``None`` when it is not there (a memo
    reference to bytes stored earlier)."""
    lo = max(floor, before - len(payload) - _SLACK)
    stream.seek(lo)
    i = stream.read(before - lo).rfind(payload)
    return lo + i if i >= 0 else None


def _relocated(found: list[Finding], apart: bool, at: int, start: int) -> list[Finding]:
    """Findings with their offset within the payload noted; those scanned apart from the outer
    stream (``io.BytesIO``) are located at the call."""
    out = []
    for f in found:
        offset = f.location.offset if f.location is not None else None
        inner = offset if apart else None if offset is None else offset - start
        location = f.location
        if apart and location is not None:
            location = Location(location.path, location.member, at)
        out.append(replace(f, location=location,
                           evidence={**f.evidence, "offset_in_payload": inner}))
    return out


def _inside(f: Finding, c: Call, where: str) -> Finding:
    """``f``, found in the bytes the call at ``c.offset`` loads, said to be there."""
    inside = {"callable": ".".join(_LOAD_FROM_BYTES), "call_offset": c.offset,
              "offset_in_payload": f.evidence.get("offset_in_payload")}
    evidence = {k: v for k, v in f.evidence.items() if k != "offset_in_payload"}
    evidence["inside"] = [inside, *evidence.get("inside", ())]
    detail = f.detail if f.detail.startswith(_INSIDE_DETAIL) else f"{_INSIDE_DETAIL} {f.detail}"
    return replace(
        f, title=f"{where}inside torch.storage._load_from_bytes at offset {c.offset}: {f.title}",
        detail=detail.rstrip(), evidence=evidence,
    )


def _mentioned(values: list[object], targets: set[int]) -> set[int]:
    """The ``targets`` (ids of imports) that ``values`` hold, looked for through tuples,
    containers and persistent ids (a call's own parts are among ``values``)."""
    found: set[int] = set()
    seen: set[int] = set()
    while values:
        v = values.pop()
        if type(v) is Global:
            if id(v) in targets:
                found.add(id(v))
            continue
        if id(v) in seen:
            continue
        if type(v) is tuple:
            values.extend(v)
        elif type(v) is ListValue:
            values.extend(v.items)
        elif type(v) is DictValue:
            for key, item in v.items:
                values.append(key)
                values.append(item)
        elif type(v) is Persistent:
            values.append(v.pid)
        else:
            continue
        seen.add(id(v))
    return found


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


def judge(a: Analysis, index: int, location: Location, policy: Policy, *,
          vetted: frozenset[int] = frozenset()) -> Iterator[Finding]:
    """The findings for one interpreted pickle (rules 1-6), numbered ``index`` in its stream."""
    where = f"pickle #{index + 1}" if index else "pickle"

    def at(offset: int) -> Location:
        return Location(location.path, location.member, offset)

    reaches = _getattr_reaches(a)
    partials = _partials(a, policy)
    # 1. imports
    reported: dict[str, Global] = {}
    called: set[int] | None = None  # the imports that are called, once one is reported
    initialised: set[int] | None = None  # the imports whose __init__ the pickle runs
    counts: dict[str, int] = {}
    for g in a.globals:
        if g.opcode.startswith("EXT") or not g.known:
            continue  # reported as pickle.global.extension / .indeterminate
        if id(g) in reaches.resolved_globals:
            continue  # each call of this getattr is judged as the attribute it reaches (3)
        if id(g) in partials:
            continue  # functools.partial of a reviewed function: data (calling it is rule 3)
        if id(g) in vetted:
            continue  # what its calls load was scanned instead (_load_from_bytes)
        v = policy.verdict(g.module, g.name, g.proto)
        if v.allowed:
            continue
        if called is None:
            called = {id(c.func) for c in a.calls}
        if initialised is None:
            initialised = _initialised(a)
        if id(g) not in called and id(g) not in initialised and policy.kept_as_data(
                v.module, v.name):
            continue  # a scorer, a callback, a method reference: imported, never called here
        if policy.rebuild_only(v.module, v.name):
            if id(g) not in initialised:
                continue  # rebuilt by cls.__new__ and its state, as reviewed
            v = replace(v, reason="was reviewed to be rebuilt without its __init__ (which "
                        "reaches a file, process or network call), and this pickle calls it")
        counts[v.qualified] = counts.get(v.qualified, 0) + 1
        if v.qualified in reported:
            continue
        reported[v.qualified] = g
        rule = (
            "pickle.global.dotted" if "." in v.name
            else "pickle.global.dangerous" if v.severity is Severity.CRITICAL
            else "pickle.global.unknown"
        )
        if policy.data_only(v.module, v.name):
            v = replace(v, reason="was reviewed to be kept as data (a callback, a scorer), not "
                        "called while loading")
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
            detail=_BREAK_DETAIL if p.rule.startswith("pickle.stream") else _STATE_DETAIL
            if p.rule == "pickle.state.code" else
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
            yield from _judge_getattr(reached, c, reaches.callers.get(id(c), []), where, at,
                                      policy)
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
            name = f"{describe(owner)}.{attribute}"
            yield finding(
                "pickle.build.global", Severity.CRITICAL,
                f"{where}: BUILD sets attributes on {name}",
                at(offset),
                detail="BUILD on an attribute fetched from an imported object rewrites that "
                "shared object in the loading process.",
                remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
                evidence={"target": name},
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



def _initialised(a: Analysis) -> set[int]:
    """ids of the imports whose ``__init__`` this pickle runs: called by REDUCE, OBJ or INST
    (NEWOBJ and ``copyreg.__newobj__`` use ``cls.__new__``), or the base ``copyreg.
    _reconstructor`` initialises."""
    ids = {id(c.func) for c in a.calls if c.opcode not in ("NEWOBJ", "NEWOBJ_EX")}
    for c in a.calls:
        func, args = c.func, c.args
        if (type(func) is Global and type(args) is tuple and len(args) > 1
                and canonical(func.module, func.name, func.proto) == _RECONSTRUCTOR):
            ids.add(id(args[1]))
    return ids


_RECONSTRUCTOR: Final = ("copyreg", "_reconstructor")


class _Reaches:
    """The ``getattr(owner, "name")`` calls of one pickle that can be resolved statically."""

    __slots__ = ("called", "callers", "resolved_globals", "targets")

    def __init__(self) -> None:
        self.targets: dict[int, tuple[Global | Call, str]] = {}
        """id(call) -> (owner, attribute)."""
        self.called: set[int] = set()
        self.callers: dict[int, list[Call]] = {}
        """id(getattr call) -> the calls of its result."""
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
        if (type(args) is tuple and len(args) == 2 and type(args[1]) is str and (
                (type(args[0]) is Global and args[0].known) or type(args[0]) is Call)):
            reaches.targets[id(c)] = (args[0], args[1])
            reaches.resolved_globals.add(id(func))
        else:
            unresolved.add(id(func))
    reaches.resolved_globals -= unresolved
    if reaches.targets:
        for c in a.calls:
            if id(c.func) in reaches.targets:
                reaches.callers.setdefault(id(c.func), []).append(c)
        reaches.called = set(reaches.callers)
    return reaches


_PARTIAL: Final = ("functools", "partial")


def _partials(a: Analysis, policy: Policy) -> set[int]:
    """ids of ``functools.partial`` imports every call of which wraps a reviewed function
    (allowed, or kept as data) and whose state, if set, wraps the same: the partial is then
    data, as its function is; a pickle that calls it meets rule 3."""
    good: set[int] = set()
    bad: set[int] = set()
    for c in a.calls:
        func = c.func
        if type(func) is not Global or canonical(func.module, func.name, func.proto) != _PARTIAL:
            continue
        args, state = c.args, c.state
        wrapped = args[0] if type(args) is tuple and args and c.opcode == "REDUCE" else None
        ok = type(wrapped) is Global and wrapped.known and (
            policy.verdict(wrapped.module, wrapped.name, wrapped.proto).allowed
            or policy.kept_as_data(wrapped.module, wrapped.name, wrapped.proto))
        if state is not None and not (type(state) is tuple and state and state[0] is wrapped):
            ok = False
        (good if ok else bad).add(id(func))
    return good - bad


def _judge_getattr(
    reached: tuple[Global | Call, str], c: Call, callers: list[Call], where: str,
    at: Callable[[int], Location], policy: Policy,
) -> Iterator[Finding]:
    owner, attribute = reached
    called = bool(callers)
    if attribute == "__new__" and type(owner) is Global and callers and all(
            _new_of(owner, caller) for caller in callers) and (
            policy.verdict(owner.module, owner.name, owner.proto).allowed
            or policy.rebuild_only(owner.module, owner.name, owner.proto)):
        return  # owner.__new__(owner, ...): what NEWOBJ does (sympy writes it so)
    dunder = attribute.startswith("__") and attribute.endswith("__")
    if isinstance(owner, Call):  # a bound method of an object this pickle built (Pattern.search)
        if not (called or dunder):
            return  # kept as data; the object itself was judged where it was built
        what = f"{attribute!r} of {describe(owner)}"
        yield finding(
            "pickle.getattr.unvetted", Severity.CRITICAL,
            f"{where} {'calls' if called else 'reads'} {what} through getattr", at(c.offset),
            detail="getattr on an object built while loading reaches "
            + ("interpreter internals." if dunder else "a method nobody vetted, then calls it."),
            remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
            evidence={"owner": describe(owner), "attribute": attribute, "called": called},
        )
        return
    v = policy.attribute(owner.module, owner.name, attribute, owner.proto, called=called)
    if v.allowed or (not called and not dunder
                     and not policy.verdict(owner.module, owner.name, owner.proto).allowed):
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


def _new_of(owner: Global, caller: Call) -> bool:
    """``caller`` is ``owner.__new__(owner, ...)``."""
    args = caller.args
    first = args[0] if type(args) is tuple and args else None
    return type(first) is Global and (first is owner or (
        first.module, first.name) == (owner.module, owner.name))


def _resolve(value: object) -> object:
    """PyTorch's legacy ``persistent_load`` returns ``pid[1]`` for ``("module", cls, ...)``."""
    if isinstance(value, Persistent):
        pid = value.pid
        if type(pid) is tuple and len(pid) >= 2 and pid[0] == "module" and type(pid[1]) is Global:
            return pid[1]
    return value
