"""``torch.storage._load_from_bytes(b)``: judged by what the constant bytes ``b`` load.

A tensor saved with plain ``pickle`` or joblib (a torchmetrics metric, a BatchEncoding) pickles
its storage as ``_load_from_bytes(b"<legacy torch.save stream>")``, which runs
``torch.load(io.BytesIO(b), weights_only=False)``. The scanner reads ``b`` as that stream, under
the same policy, instead of reporting every such file as critical.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import joblib
import pytest
import torch
from tests.scan.pickle.torch_bytes import LoadFromBytes, PassedOn, Point, System, legacy, zipped

from bastion.findings import Finding, Location, Severity
from bastion.scan import Policy, ScanLimits, scan
from bastion.scan.pickle import UnsafePickleError, _stream
from bastion.scan.pickle._machine import Global, Opaque, analyse
from bastion.scan.pickle.unpickler import RestrictedUnpickler

_SYSTEM = b"cposix\nsystem\n"  # how the nested legacy stream (protocol 2) imports os.system
_LOAD = "torch.storage._load_from_bytes"
_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."  # a legacy stream's first pickle


def _scan(data: bytes, *, limits: ScanLimits | None = None,
          policy: Policy | None = None) -> list[Finding]:
    return list(_stream.scan_pickles(io.BytesIO(data), Location("x.pkl"),
                                     limits or ScanLimits(), policy or Policy.default(),
                                     end=len(data)))


def _rules(findings: list[Finding]) -> list[tuple[str, str]]:
    return sorted((f.rule, f.severity.value) for f in findings)


def _imports_load_from_bytes(findings: list[Finding]) -> bool:
    return any(f.rule == "pickle.global.dangerous" and f.evidence.get("global") == _LOAD
               for f in findings)


# -- benign: tensors pickled without torch.save --------------------------------------------
_TENSORS = {
    "arange": lambda: torch.arange(10.0),
    "dict": lambda: {"w": torch.ones(3, 2), "b": torch.zeros(2), "step": torch.tensor(7)},
    "large": lambda: torch.arange(20_000.0),  # 80 KB of storage: past what the machine keeps
}


@pytest.mark.parametrize("proto", [3, 4, 5])
@pytest.mark.parametrize("name", list(_TENSORS))
def test_a_tensor_pickled_without_torch_save_is_clean_and_loads_restricted(
    name: str, proto: int,
) -> None:
    value = _TENSORS[name]()
    data = pickle.dumps(value, protocol=proto)
    assert _LOAD.rsplit(".", 1)[1].encode() in data
    assert _scan(data) == []
    loaded = RestrictedUnpickler(io.BytesIO(data)).load()
    if isinstance(value, dict):
        assert loaded.keys() == value.keys()
        assert all(torch.equal(loaded[k], v) for k, v in value.items())
    else:
        assert torch.equal(loaded, value)


def test_a_large_storage_is_read_again_from_the_file() -> None:
    """Past 64 KiB the machine keeps only where the payload is; the scan reads it there."""
    data = pickle.dumps(torch.arange(20_000.0), protocol=4)
    a = analyse(io.BytesIO(data), 0, len(data), max_ops=10_000)
    [call] = [c for c in a.calls if type(c.func) is Global and c.func.name == "_load_from_bytes"]
    assert type(call.args) is tuple
    [payload] = call.args
    assert isinstance(payload, Opaque) and payload.kind == "bytes" and payload.offset is not None
    assert payload.size > 1 << 16
    assert data[payload.offset:payload.offset + len(_MAGIC)] == _MAGIC
    assert _scan(data) == []


def test_a_joblib_dump_of_tensors_scans_clean_and_loads_restricted(tmp_path: Path) -> None:
    value = {"weights": torch.randn(4, 3), "large": torch.arange(20_000.0), "n": 3}
    path = tmp_path / "tensors.joblib"
    joblib.dump(value, path)
    report = scan(path, workers=1)
    assert list(report.findings) == []
    with path.open("rb") as f:
        loaded = RestrictedUnpickler(f).load()
    assert loaded["n"] == 3
    assert torch.equal(loaded["weights"], value["weights"])
    assert torch.equal(loaded["large"], value["large"])


def test_the_same_bytes_called_twice_are_scanned_once(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    shared = legacy(System(f"touch {canary}"))
    data = pickle.dumps([LoadFromBytes(shared), LoadFromBytes(shared)], protocol=4)
    assert data.count(shared) == 1  # the second call takes it from the memo
    payloads = [f for f in _scan(data) if f.evidence.get("global") == "posix.system"]
    assert len(payloads) == 1
    benign = legacy(torch.arange(3.0))
    assert _scan(pickle.dumps([LoadFromBytes(benign)] * 2, protocol=4)) == []


# -- malicious: what the bytes load is judged -----------------------------------------------
@pytest.mark.parametrize("pad", [0, 20_000], ids=["kept", "read-again"])
def test_a_payload_inside_load_from_bytes_is_critical_located_inside_and_never_runs(
    tmp_path: Path, pad: int,
) -> None:
    canary = tmp_path / "canary"
    inner = legacy({"pad": torch.zeros(pad), "x": System(f"touch {canary}")})
    data = pickle.dumps(LoadFromBytes(inner), protocol=4)
    start = data.index(inner)
    findings = _scan(data)
    [hit] = [f for f in findings if f.severity is Severity.CRITICAL]
    assert hit.rule == "pickle.global.dangerous" and hit.evidence["global"] == "posix.system"
    assert not _imports_load_from_bytes(findings)  # what it loads is the finding instead
    # 1. located in the outer file, at the nested opcode; said to be inside the call
    assert hit.location is not None and hit.location.offset is not None
    offset = hit.location.offset
    assert data[offset:offset + len(_SYSTEM)] == _SYSTEM
    [inside] = hit.evidence["inside"]
    assert inside["callable"] == _LOAD
    assert inside["offset_in_payload"] == offset - start
    assert data[inside["call_offset"]:inside["call_offset"] + 1] == b"R"
    assert f"inside {_LOAD} at offset {inside['call_offset']}" in hit.title
    assert "pickle #4" in hit.title  # the object pickle of the legacy stream
    # 2. scanning ran nothing; neither does the restricted unpickler
    assert not canary.exists()
    with pytest.raises(UnsafePickleError, match=r"posix\.system"):
        RestrictedUnpickler(io.BytesIO(data)).load()
    assert not canary.exists()
    pickle.loads(data)  # the payload is real: plain pickle runs it
    assert canary.exists()


def test_the_policy_judges_the_nested_stream_too() -> None:
    data = pickle.dumps(LoadFromBytes(legacy(Point(1, 2))), protocol=4)
    name = f"{Point.__module__}.Point"
    assert ("pickle.global.unknown", "high") in _rules(_scan(data))
    with pytest.raises(UnsafePickleError, match="Point"):
        RestrictedUnpickler(io.BytesIO(data)).load()
    allowed = Policy.default().allowing([name])
    assert _scan(data, policy=allowed) == []
    assert RestrictedUnpickler(io.BytesIO(data), policy=allowed).load() == Point(1, 2)


def test_protocol_2_bytes_spelled_as_codecs_encode_are_read_as_the_bytes_they_make() -> None:
    """Protocol 2 has no bytes opcode: it writes ``_codecs.encode(text, "latin1")``."""
    tensor = torch.arange(10.0)
    data = pickle.dumps(tensor, protocol=2)
    assert b"_codecs" in data
    assert _scan(data) == []
    assert torch.equal(RestrictedUnpickler(io.BytesIO(data)).load(), tensor)


def test_load_from_bytes_of_a_string_stays_critical() -> None:
    text = b"\x80\x04ctorch.storage\n_load_from_bytes\n\x8c\x03abc\x85R."
    assert _imports_load_from_bytes(_scan(text))
    with pytest.raises(UnsafePickleError, match="not bytes"):
        RestrictedUnpickler(io.BytesIO(text)).load()


def test_load_from_bytes_used_any_other_way_stays_critical() -> None:
    benign = legacy(torch.arange(3.0))
    # called with constant bytes, and handed to a reconstructor that calls it
    data = pickle.dumps([LoadFromBytes(benign), PassedOn(benign)], protocol=4)
    assert _imports_load_from_bytes(_scan(data))
    # called with constant bytes, and returned as data
    data = pickle.dumps((torch.storage._load_from_bytes, LoadFromBytes(benign)), protocol=4)
    assert _imports_load_from_bytes(_scan(data))


@pytest.mark.parametrize("payload", [b"", b"not a torch stream", pickle.dumps(1, protocol=2)],
                         ids=["empty", "garbage", "another-pickle"])
def test_bytes_that_are_not_a_legacy_torch_stream_are_high(payload: bytes) -> None:
    findings = _scan(pickle.dumps(LoadFromBytes(payload), protocol=4))
    assert ("pickle.torch-bytes.unrecognised", "high") in _rules(findings)
    assert all(f.severity is Severity.HIGH for f in findings)
    [unrecognised] = [f for f in findings if f.rule == "pickle.torch-bytes.unrecognised"]
    assert f"inside {_LOAD} at offset" in unrecognised.title


def test_a_zip_checkpoint_in_load_from_bytes_is_not_vouched_for() -> None:
    findings = _scan(pickle.dumps(LoadFromBytes(zipped(torch.ones(2))), protocol=4))
    assert ("pickle.torch-bytes.unrecognised", "high") in _rules(findings)
    assert _imports_load_from_bytes(findings)  # torch.load would read it; the scan did not


def test_nesting_is_followed_up_to_the_depth_limit() -> None:
    inner = legacy(torch.arange(3.0))
    middle = legacy(LoadFromBytes(inner), protocol=4)  # protocol 4: constant bytes inside too
    data = pickle.dumps(LoadFromBytes(middle), protocol=4)
    assert _scan(data) == []
    findings = _scan(data, limits=ScanLimits(max_depth=1))
    [hit] = findings
    assert hit.evidence["global"] == _LOAD and hit.severity is Severity.CRITICAL
    assert hit.title.startswith(f"inside {_LOAD} at offset")
    assert _imports_load_from_bytes(_scan(data, limits=ScanLimits(max_depth=0)))


def test_a_payload_from_the_memo_far_back_is_reported_at_the_call(tmp_path: Path) -> None:
    """Bytes a memo reference hands to the call are not in front of it; the scan reads the
    kept value and reports at the call."""
    evil = legacy(System(f"touch {tmp_path / 'canary'}"))
    data = pickle.dumps([evil, b"x" * 200, LoadFromBytes(evil)], protocol=4)
    [hit] = [f for f in _scan(data) if f.severity is Severity.CRITICAL]
    [inside] = hit.evidence["inside"]
    assert hit.location is not None and hit.location.offset == inside["call_offset"]
    assert evil[inside["offset_in_payload"]:].startswith(_SYSTEM)
