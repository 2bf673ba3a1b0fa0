"""The TorchScript review: real exports pass; file access, foreign operator namespaces and
unparseable code are findings (on hand-made archives, so every rule is reached)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch
from tests.models.conftest import make_net, script, trace

from bastion.findings import Location, Severity
from bastion.scan import scan
from bastion.scan.formats.torchscript import is_torchscript, review_code


def _saved(module: torch.jit.ScriptModule) -> bytes:
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, buffer)
    return buffer.getvalue()


def _archive(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("m/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("m/constants.pkl", b"\x80\x02).")
        z.writestr("m/code/__torch__.py", code)
        z.writestr("m/code/__torch__.py.debug_pkl", b"not code: not read")
    return buffer.getvalue()


def test_real_exports_pass() -> None:
    net = make_net()
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2),
                               torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    for data in (_saved(script(net)), _saved(trace(net, torch.zeros(1, 4))),
                 _saved(script(conv)), _saved(trace(conv.eval(), torch.zeros(1, 1, 4, 4)))):
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        assert is_torchscript(names)
        assert review_code(io.BytesIO(data), Location("m.pt")) == []


def test_a_state_dict_archive_is_not_torchscript() -> None:
    buffer = io.BytesIO()
    torch.save(make_net().state_dict(), buffer)
    assert not is_torchscript(zipfile.ZipFile(buffer).namelist())


@pytest.mark.parametrize(("code", "rule", "severity"), [
    ("def forward(self, x):\n    torch.save(x, 'out')\n    return x\n",
     "torchscript.file-access", Severity.CRITICAL),
    ("def forward(self, x):\n    y = torch.from_file('/etc/passwd', True, 8)\n    return x\n",
     "torchscript.file-access", Severity.CRITICAL),
    ("def forward(self, x):\n    return ops.aten.save(x, 'out')\n",
     "torchscript.file-access", Severity.CRITICAL),
    ("def forward(self, x):\n    return torch.ops.c10d.send([x], 1)\n",
     "torchscript.operator", Severity.HIGH),
    ("def forward(self, x):\n    return ops.my_lib.run(x)\n",
     "torchscript.operator", Severity.HIGH),
    ("def forward(self, x):\n    return torch.classes.my.Thing(x)\n",
     "torchscript.operator", Severity.HIGH),
    ("def forward(self, x):\n    f = getattr(torch, 'sa' + 've')\n    return x\n",
     "torchscript.operator", Severity.HIGH),
    ("def forward(self x):\n", "torchscript.unreadable", Severity.HIGH),
])
def test_what_the_review_reports(code: str, rule: str, severity: Severity) -> None:
    findings = review_code(io.BytesIO(_archive(code)), Location("m.pt"))
    assert [(f.rule, f.severity) for f in findings] == [(rule, severity)]
    assert findings[0].location is not None
    assert findings[0].location.member == "m/code/__torch__.py"


def test_harmless_code_passes() -> None:
    code = ("def forward(self, x):\n    _0 = getattr(self, '0')\n"
            "    y = ops.prim.NumToTensor(torch.size(x, 0))\n"
            "    return torch.add(torch.relu(_0.forward(x)), y)\n")
    assert review_code(io.BytesIO(_archive(code)), Location("m.pt")) == []


def test_unreadable_archive_is_a_finding() -> None:
    assert [f.rule for f in review_code(io.BytesIO(b"PK\x03\x04broken"), Location("m.pt"))] == [
        "torchscript.unreadable"]


def test_bastion_scan_passes_real_torchscript_and_catches_its_file_access(
    tmp_path: Path, canary: Path
) -> None:
    """Every TorchScript archive was flagged for its __torch__ globals; a benign export is
    clean now, and one whose code writes a file is still critical (it runs nothing)."""
    benign = tmp_path / "scripted.pt"
    benign.write_bytes(_saved(script(make_net())))
    traced = tmp_path / "traced.pt"
    traced.write_bytes(_saved(trace(make_net(), torch.zeros(1, 4))))
    for path in (benign, traced):
        report = scan(path, workers=1)
        assert [f.rule for f in report.findings if f.severity >= Severity.MEDIUM] == []
        assert report.files[0].format.value == "torch-zip"

    class Writer(torch.nn.Module):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            torch.save(x, self.path)  # TorchScript compiles this to aten::save
            return x

    evil = tmp_path / "writer.pt"
    evil.write_bytes(_saved(script(Writer(str(canary)))))
    findings = scan(evil, workers=1).findings
    assert ("torchscript.file-access", Severity.CRITICAL) in {(f.rule, f.severity)
                                                              for f in findings}
    assert not canary.exists()
