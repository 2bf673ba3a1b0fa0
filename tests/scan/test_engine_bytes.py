"""scan_bytes: the same scan as scan() of a file holding the bytes, bound to their digest."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile
from pathlib import Path

import pytest

from bastion.findings import Severity
from bastion.scan import Format, Policy, ScanLimits, scan, scan_bytes


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize("data", [
    pickle.dumps({"w": [1.0, 2.0]}),
    pickle.dumps(_Payload()),
    _zip({"inner/evil.pkl": pickle.dumps(_Payload()), "readme.txt": b"hi"}),
    b"plain text, no model",
], ids=["clean-pickle", "evil-pickle", "zip-with-evil-member", "unknown"])
def test_same_findings_as_scanning_the_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    on_disk = scan(path, workers=1, digest=True)
    in_memory = scan_bytes(data, str(path))
    assert [(f.rule, f.severity, f.location) for f in in_memory.findings] == \
        [(f.rule, f.severity, f.location) for f in on_disk.findings]
    assert in_memory.files == on_disk.files
    assert in_memory.files[0].sha256 == hashlib.sha256(data).hexdigest()


def test_policy_and_limits_apply() -> None:
    data = pickle.dumps(_Payload())
    assert scan_bytes(data, "x.pkl").worst is Severity.CRITICAL
    allowed = Policy.default().allowing(["posix.system"])
    assert scan_bytes(data, "x.pkl", policy=allowed).clean
    nested = _zip({"a.zip": _zip({"b.pkl": pickle.dumps([1])})})
    limited = scan_bytes(nested, "n.zip", limits=ScanLimits(max_depth=1))
    assert any(f.rule == "archive.limit.depth" for f in limited.findings)
    assert limited.files[0].format is Format.ZIP
