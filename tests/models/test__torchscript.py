"""The TorchScript review: real exports pass; file access, foreign operator namespaces and
unparseable code are findings (on hand-made archives, so every rule is reached)."""

from __future__ import annotations

import io
import zipfile

import pytest
import torch
from tests.models.conftest import make_net, script, trace

from bastion.findings import Severity
from bastion.models._torchscript import is_torchscript, review_code


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
        assert review_code(data, "m.pt") == []


def test_a_state_dict_archive_is_not_torchscript() -> None:
    buffer = io.BytesIO()
    torch.save(make_net().state_dict(), buffer)
    assert not is_torchscript(zipfile.ZipFile(buffer).namelist())


@pytest.mark.parametrize(("code", "rule", "severity"), [
    ("def forward(self, x):\n    torch.save(x, 'out')\n    return x\n",
     "model.torchscript.file-access", Severity.CRITICAL),
    ("def forward(self, x):\n    y = torch.from_file('/etc/passwd', True, 8)\n    return x\n",
     "model.torchscript.file-access", Severity.CRITICAL),
    ("def forward(self, x):\n    return ops.aten.save(x, 'out')\n",
     "model.torchscript.file-access", Severity.CRITICAL),
    ("def forward(self, x):\n    return torch.ops.c10d.send([x], 1)\n",
     "model.torchscript.operator", Severity.HIGH),
    ("def forward(self, x):\n    return ops.my_lib.run(x)\n",
     "model.torchscript.operator", Severity.HIGH),
    ("def forward(self, x):\n    return torch.classes.my.Thing(x)\n",
     "model.torchscript.operator", Severity.HIGH),
    ("def forward(self, x):\n    f = getattr(torch, 'sa' + 've')\n    return x\n",
     "model.torchscript.operator", Severity.HIGH),
    ("def forward(self x):\n", "model.torchscript.unreadable", Severity.HIGH),
])
def test_what_the_review_reports(code: str, rule: str, severity: Severity) -> None:
    findings = review_code(_archive(code), "m.pt")
    assert [(f.rule, f.severity) for f in findings] == [(rule, severity)]
    assert findings[0].location is not None
    assert findings[0].location.member == "m/code/__torch__.py"


def test_harmless_code_passes() -> None:
    code = ("def forward(self, x):\n    _0 = getattr(self, '0')\n"
            "    y = ops.prim.NumToTensor(torch.size(x, 0))\n"
            "    return torch.add(torch.relu(_0.forward(x)), y)\n")
    assert review_code(_archive(code), "m.pt") == []


def test_unreadable_archive_is_a_finding() -> None:
    assert [f.rule for f in review_code(b"PK\x03\x04broken", "m.pt")] == [
        "model.torchscript.unreadable"]
