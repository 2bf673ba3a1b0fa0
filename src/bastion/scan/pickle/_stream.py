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
9. ``getattr(<Keras model class>, "_unpickle_model")(BytesIO(b))`` with constant ``b``: ``b``
   is handed to the caller (``archives``) to scan as the Keras archive it is; the imports are
   then not reported. Otherwise rules 1 and 3 apply.
10. :data:`~bastion.scan.pickle.policy.CONSTANT_CALLS` (``operator.attrgetter``, ``type``, …)
    called with constants only build data: the import is not reported while every use of it
    is such a call and no call but a container receives it or its results
    (:func:`_constant_calls`).
11. What ``torch._tensor._rebuild_from_type(_v2)(func, ...)`` calls: ``func`` is judged as
    called; anything but an import admitted to be called is ``pickle.call.indirect``
    (critical).
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
from bastion.scan.pickle.policy import (
    CALLS_ARGUMENT,
    CLASS_FACTORIES,
    CONSTANT_CALLS,
    GETATTR,
    Policy,
    canonical,
    class_factory,
    constant_call,
)

__all__ = ["judge", "scan_pickles"]

_CODE_CARRIERS: Final = {
    "numba": (
        "This is numba's serializer: the pickle holds a compiled function's Python code (a "
        "marshalled code object and its globals, for numba to recompile), and loading it "
        "rebuilds and runs that code. A file that carries code cannot be vouched for by "
        "its names, so it stays a finding even from a trusted library (umap-learn models "
        "pickle their numba-compiled distance and graph functions this way).",
        "Load it only if you trust its author, with --allow numba.core.serialize.* for that "
        "file; better, save what the model learnt as data (umap-learn: the embedding and "
        "the parameters) and rebuild the model from code you installed.",
    ),
}
"""Libraries whose pickles carry code by design: the finding says so, and what to do."""
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
    archives: list[tuple[int, int]] | None = None,
) -> Iterator[Finding]:
    """Scan the pickles stacked in ``stream[start:end]``: ``count`` of them, or all there are.

    ``archives``, when given, receives ``(offset, size)`` of each Keras archive a pickle hands
    to ``Model._unpickle_model`` (rule 9): the caller scans those bytes as the archive they
    are. Without it, such a call stays a finding."""
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
                keras = _keras_archives(a, stream) if archives is not None else _Keras()
                if archives is not None:
                    archives.extend(keras.spans)
                findings = [*judge(a, index, location, policy, vetted=vetted | keras.vetted,
                                   keras=keras), *nested]
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
        if type(v) is Global or type(v) is Call:  # a call's own parts are judged as its own
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
          vetted: frozenset[int] = frozenset(), keras: _Keras | None = None) -> Iterator[Finding]:
    """The findings for one interpreted pickle (rules 1-6, 9-11), numbered ``index`` in its
    stream."""
    where = f"pickle #{index + 1}" if index else "pickle"

    def at(offset: int) -> Location:
        return Location(location.path, location.member, offset)

    keras = keras or _Keras()
    reaches = _getattr_reaches(a)
    partials, newers = _partials(a, policy, reaches)
    constants = _constant_calls(a, keras.consumers)
    factories = _factory_results(a, policy)
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
            continue  # what its calls load was scanned instead (_load_from_bytes, Keras)
        if id(g) in constants:
            continue  # called with constants only, building data (10)
        v = policy.verdict(g.module, g.name, g.proto)
        if v.allowed:
            continue
        if canonical(v.module, v.name, 4) in CONSTANT_CALLS:
            v = replace(v, reason=f"{v.reason}; it builds only data when called with constants "
                        "and its result is kept as data, which is not so here")
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
        carrier = _CODE_CARRIERS.get(v.module.split(".", 1)[0])
        yield finding(
            rule, v.severity, f"{where} {verb} {v.qualified}", at(g.offset),
            detail=f"{g.opcode} makes the unpickler import {v.qualified}, which {v.reason}."
            + (f" {carrier[0]}" if carrier else ""),
            remediation=carrier[1] if carrier else _REMEDIATE_CODE, techniques=CODE_EXECUTION,
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
            if id(c) not in newers.getattrs and id(c) not in keras.getattrs:
                yield from _judge_getattr(reached, c, reaches.callers.get(id(c), []), where, at,
                                          policy)
            if c.used or not complete:
                continue
        elif type(func) is Global:  # almost every call: nothing more to resolve
            if c.used or not complete:
                continue
        elif id(func) in reaches.targets:
            continue  # a call of getattr's result: judged with that getattr above
        elif id(func) in newers or id(func) in factories:
            continue  # partial(C.__new__, C, ...)(): NEWOBJ_EX under protocol 2; a factory's class
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
    # 11. what an allowed reconstructor calls (torch._tensor._rebuild_from_type_v2(func, ...))
    for c in a.calls:
        func = c.func
        if type(func) is Global and canonical(func.module, func.name, func.proto) in (
                CALLS_ARGUMENT) and type(c.args) is tuple and c.args:
            inner = _resolve(c.args[0])
            if type(inner) is Global and (not inner.known or policy.verdict(
                    inner.module, inner.name, inner.proto).allowed or id(inner) in vetted):
                continue  # an allowed callable (rule 1 judges the rest of its imports)
            name = describe(inner)
            yield finding(
                "pickle.call.indirect", Severity.CRITICAL,
                f"{where}: {func.module}.{func.name} calls {name}", at(c.offset),
                detail=f"{func.module}.{func.name}(func, type, args, state) calls func(*args) "
                "while loading; only a callable admitted to be called may be handed to it, "
                "never a value kept as data (a bound method, a partial, a function reviewed as "
                "data, a value built at load time).",
                remediation=_REMEDIATE_CODE, techniques=CODE_EXECUTION,
                evidence={"callable": name, "via": f"{func.module}.{func.name}"},
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


class _Newers(set[int]):
    """ids of ``functools.partial`` results that are ``partial(C.__new__, C, *args, **kw)``:
    how protocols 0-3 write ``NEWOBJ_EX`` (``pickle.py``'s ``save_reduce``). Calling one runs
    ``C.__new__(C, ...)``, what NEWOBJ does; ``getattrs`` holds the ``getattr(C, "__new__")``
    calls they wrap."""

    getattrs: set[int]

    def __init__(self) -> None:
        super().__init__()
        self.getattrs = set()


def _partials(a: Analysis, policy: Policy, reaches: _Reaches) -> tuple[set[int], _Newers]:
    """ids of the ``functools.partial`` imports that are data, and the partials that are
    ``NEWOBJ_EX`` (:class:`_Newers`).

    A partial import is data when every call of it wraps a reviewed function (allowed, or
    kept as data), a (non-dunder) method of an object this pickle built (``getattr(rng, "gauss")``,
    itself kept as data), or ``C.__new__`` of an allowed (or rebuild-only) class ``C`` with
    ``C`` bound first; and its state, if set, keeps the same function. A pickle that calls a
    data partial meets rule 3; a ``C.__new__`` partial may be called, as NEWOBJ may."""
    good: set[int] = set()
    bad: set[int] = set()
    newers = _Newers()
    for c in a.calls:
        func = c.func
        if type(func) is not Global or canonical(func.module, func.name, func.proto) != _PARTIAL:
            continue
        args, state = c.args, c.state
        wrapped = args[0] if type(args) is tuple and args and c.opcode == "REDUCE" else None
        ok = type(wrapped) is Global and wrapped.known and (
            policy.verdict(wrapped.module, wrapped.name, wrapped.proto).allowed
            or policy.kept_as_data(wrapped.module, wrapped.name, wrapped.proto))
        target = reaches.targets.get(id(wrapped)) if type(wrapped) is Call else None
        if target is not None:
            owner, attribute = target
            if type(owner) is Call and not attribute.startswith("__"):
                ok = True  # a method of a built object: kept as data, so is the partial
            elif (attribute == "__new__" and type(owner) is Global and owner.known
                  and id(wrapped) not in reaches.called
                  and _binds_owner(owner, args, state) and (
                      policy.verdict(owner.module, owner.name, owner.proto).allowed
                      or policy.rebuild_only(owner.module, owner.name, owner.proto))):
                ok = True
                newers.add(id(c))
                newers.getattrs.add(id(wrapped))
        if state is not None and not (type(state) is tuple and state and state[0] is wrapped):
            ok = False
        (good if ok else bad).add(id(func))
    if bad:  # a __new__ partial made by a partial import used badly elsewhere is not vetted
        for c in a.calls:
            if id(c) in newers and id(c.func) in bad:
                newers.discard(id(c))
                if type(c.args) is tuple:
                    newers.getattrs.discard(id(c.args[0]))
    return good - bad, newers


def _binds_owner(owner: Global, args: object, state: object) -> bool:
    """The partial binds ``owner`` as its first argument: in its REDUCE arguments
    ``(func, owner, ...)`` or its BUILD state ``(func, (owner, ...), kwargs, None)``."""
    def same(v: object) -> bool:
        return type(v) is Global and (v is owner or (v.module, v.name) == (owner.module,
                                                                           owner.name))
    if type(args) is tuple and len(args) > 1:
        return same(args[1]) and state is None
    return (type(state) is tuple and len(state) == 4 and type(state[1]) is tuple
            and bool(state[1]) and same(state[1][0])
            and (state[3] is None or (type(state[3]) is DictValue and not state[3].items)))


_CONTAINERS: Final = frozenset({
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "list"), ("builtins", "tuple"),
    ("builtins", "dict"), ("collections", "OrderedDict"), ("collections", "deque"),
})
"""Calls that only hold their arguments (how protocol 2 writes a set or a frozenset)."""


def _constant_calls(a: Analysis, consumers: frozenset[int]) -> set[int]:
    """ids of the :data:`CONSTANT_CALLS` imports (``operator.attrgetter``, ``type``, …) that
    only build data here (rule 10). Steps:

    1. every use of the import is a call with constant arguments that
       :func:`constant_call` admits (``NEWOBJ_EX``'s keyword arguments are not admitted);
    2. no BUILD on a result, but a ``BytesIO``'s own ``(bytes, position, None)`` state;
    3. neither the import nor a result is an argument of any call but a container
       (``set([...])``) or a consumer that was scanned instead (``Model._unpickle_model``'s
       archive): a ``methodcaller`` handed to something that calls its argument would call
       any method of any object. Kept in containers, in an object's BUILD state (an object's
       logger) or returned, they are data; calling one is rule 3. Containers keep their
       first items only: one past them is not looked for.
    """
    targets = {id(g) for g in a.globals if g.known
               and canonical(g.module, g.name, g.proto) in CONSTANT_CALLS}
    if not targets:
        return set()
    bad: set[int] = set()
    results: set[int] = set()
    for c in a.calls:
        func = c.func
        if type(func) is not Global or id(func) not in targets:
            continue
        key = canonical(func.module, func.name, func.proto)
        if c.opcode == "NEWOBJ_EX" or constant_call(*key, _constants(c.args)) is None or not (
                c.state is None or (key[1] == "BytesIO" and _buffer_state(c.state))):
            bad.add(id(func))  # 1. 2.
        results.add(id(c))
    values: list[object] = []  # 3.
    for c in a.calls:
        func = c.func
        if id(c) in consumers or id(c) in results or (type(func) is Global and canonical(
                func.module, func.name, func.proto) in _CONTAINERS):
            continue
        values.append(func if id(func) not in targets else None)
        values.append(c.args)
    for built, _ in a.builds:
        values.append(built if type(built) is Global else None)
    reached = _mentioned(values, targets | results)
    for c in a.calls:
        if id(c) in reached:
            bad.add(id(c.func))
    return targets - bad - reached


def _constants(args: object) -> object:
    """A call's arguments with payloads too long to keep (``Opaque`` bytes) as empty bytes:
    constants, whatever their length."""
    if type(args) is not tuple:
        return args
    return tuple(b"" if type(v) is Opaque and v.kind == "bytes" else v for v in args)


def _buffer_state(state: object) -> bool:
    """``BytesIO.__setstate__``'s ``(initial bytes, position, None)``; no attributes set."""
    return (type(state) is tuple and len(state) == 3
            and (type(state[0]) is bytes or _latin1(state[0]) is not None  # protocol 2
                 or (type(state[0]) is Opaque and state[0].kind == "bytes"))
            and type(state[1]) is int and (state[2] is None or (
                type(state[2]) is DictValue and not state[2].items)))


def _factory_results(a: Analysis, policy: Policy) -> set[int]:
    """ids of calls of a reviewed class factory (:data:`CLASS_FACTORIES`, sympy's
    ``_rebuild_undef``) with arguments :func:`class_factory` admits: the result is a class of
    the factory's own family, so calling it is constructing that class. The factory must be
    allowed itself (rule 1 judges it)."""
    found: set[int] = set()
    for c in a.calls:
        func = c.func
        if type(func) is Global and func.known and canonical(
                func.module, func.name, func.proto) in CLASS_FACTORIES and policy.verdict(
                func.module, func.name, func.proto).allowed and c.state is None and (
                class_factory(*canonical(func.module, func.name, func.proto),
                              _plain(c.args)) is not None):
            found.add(id(c))
    return found


def _plain(value: object) -> object:
    """A kept dict as a plain dict, for :func:`class_factory` (other values as they are)."""
    if type(value) is tuple:
        return tuple(_plain(v) for v in value)
    if type(value) is DictValue:
        return {k: _plain(v) for k, v in value.items}
    return value


_KERAS_OWNERS: Final = frozenset({
    ("keras.src.models.functional", "Functional"), ("keras.src.models.sequential", "Sequential"),
    ("keras.src.models.model", "Model"),
})
"""Keras 3 models, which pickle as ``getattr(cls, "_unpickle_model")(BytesIO(archive))``
(``keras/src/saving/keras_saveable.py``): ``_load_model_from_fileobj(..., safe_mode=False)``
of the ``.keras`` archive's bytes."""


class _Keras:
    """The ``Model._unpickle_model(BytesIO(b))`` calls of one pickle whose archive bytes are
    scanned as the archive they are (rule 9)."""

    __slots__ = ("consumers", "getattrs", "spans", "vetted")

    def __init__(self) -> None:
        self.spans: list[tuple[int, int]] = []
        """``(offset, size)`` of each archive's bytes in the stream."""
        self.vetted: frozenset[int] = frozenset()
        """ids of the imports (the model class, ``getattr``) judged by that scan instead."""
        self.getattrs: set[int] = set()
        """ids of the ``getattr(cls, "_unpickle_model")`` calls so judged."""
        self.consumers: frozenset[int] = frozenset()
        """ids of the ``_unpickle_model`` calls, whose argument is the ``BytesIO``."""


def _keras_archives(a: Analysis, stream: BinaryIO) -> _Keras:
    """Rule 9. Steps: 1. ``getattr(<Keras model class>, "_unpickle_model")``, every use of it
    a call; 2. each call's one argument a ``BytesIO`` of constant bytes that can be read again
    from the stream (its own ``(bytes, 0, None)`` state); 3. the class import used for nothing
    else. Those bytes are handed to the caller as an archive to scan (nested, under the same
    policy and limits); anything else stays a finding (rules 1 and 3)."""
    keras = _Keras()
    reaches = _getattr_reaches(a)
    owners: dict[int, Global] = {}
    getattrs: set[int] = set()
    consumers: set[int] = set()
    spans: list[tuple[int, int]] = []
    unusable: set[int] = set()
    for c in a.calls:
        target = reaches.targets.get(id(c))
        if target is None:
            continue
        owner, attribute = target
        if type(owner) is not Global or attribute != "_unpickle_model" or canonical(
                owner.module, owner.name, owner.proto) not in _KERAS_OWNERS:
            continue
        callers = reaches.callers.get(id(c), [])
        archive = [_archive(caller, stream) for caller in callers]
        if not callers or any(span is None for span in archive):  # 1. 2.
            unusable.add(id(owner))
            continue
        owners[id(owner)] = owner
        getattrs.add(id(c))
        consumers.update(id(caller) for caller in callers)
        spans.extend(span for span in archive if span is not None)
    owners = {k: v for k, v in owners.items() if k not in unusable}
    if not owners:
        return keras
    values: list[object] = [a.result]  # 3.
    for c in a.calls:
        if id(c) in getattrs:
            continue
        values.extend((c.func, c.args, c.state))
    if _mentioned(values, set(owners)):
        return keras
    keras.spans, keras.getattrs, keras.consumers = spans, getattrs, frozenset(consumers)
    keras.vetted = frozenset(owners)
    return keras


def _archive(caller: Call, stream: BinaryIO) -> tuple[int, int] | None:
    """``(offset, size)`` of the bytes of the ``BytesIO`` ``caller`` is called with: a
    payload skipped by seeking, or kept bytes found where a pickler writes them, just after
    the buffer's NEWOBJ."""
    args = caller.args
    if caller.opcode != "REDUCE" or type(args) is not tuple or len(args) != 1:
        return None
    buffer = args[0]
    if type(buffer) is not Call or type(buffer.func) is not Global or canonical(
            buffer.func.module, buffer.func.name, buffer.func.proto)[1] != "BytesIO":
        return None
    state = buffer.state
    if not _buffer_state(state) or type(state) is not tuple:
        return None
    payload = state[0]
    if type(payload) is Opaque and payload.offset is not None:
        return payload.offset, payload.size
    if type(payload) is bytes and payload:
        stream.seek(buffer.offset)
        i = stream.read(len(payload) + _SLACK).find(payload)
        return (buffer.offset + i, len(payload)) if i >= 0 else None
    return None


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
