"""load_model: every format loads to the same predictions as the original; anything unsafe,
damaged or unsupported is refused with a clear error, before anything in it runs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sys
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
import safetensors.torch
import skops.io
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from tests.models.conftest import make_net, script, trace
from tests.models.onnx_models import linear, reference_logits

import bastion.scan
from bastion.errors import BastionError
from bastion.findings import Severity
from bastion.models import (
    Differentiable,
    InputSpec,
    MissingDependencyError,
    ModelError,
    ModelFormat,
    ModelFormatError,
    Representable,
    TorchPredictor,
    UnsafeModelError,
    load_model,
    load_model_bytes,
)
from bastion.scan import Policy


class Payload:
    """Unpickling it runs a shell command that creates the canary."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.canary}",))


class OpenPayload(Payload):
    """…or opens the canary for writing."""

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.canary), "w"))


def _torch_labels(net: torch.nn.Module, x: np.ndarray) -> list[int]:
    with torch.no_grad():
        return net(torch.as_tensor(x)).argmax(1).tolist()


def _arch() -> torch.nn.Module:
    return make_net(seed=99)  # other weights: loading must replace every one


# ------------------------------------------------------------------------------- formats


def test_whole_torch_module_round_trips(tmp_path: Path, net, x) -> None:
    torch.save(net, tmp_path / "net.pt")
    loaded = load_model(tmp_path / "net.pt")
    assert loaded.format is ModelFormat.TORCH and isinstance(loaded.predictor, TorchPredictor)
    assert isinstance(loaded.predictor, Differentiable | Representable)
    assert loaded.predictor.predict(x).tolist() == _torch_labels(net, x)
    assert torch.equal(loaded.predictor.module(torch.as_tensor(x)), net(torch.as_tensor(x)))
    data = (tmp_path / "net.pt").read_bytes()
    assert loaded.sha256 == hashlib.sha256(data).hexdigest() and loaded.size == len(data)
    assert loaded.report.clean and loaded.report.files[0].sha256 == loaded.sha256


def test_legacy_torch_format(tmp_path: Path, net, x) -> None:
    torch.save(net, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.format is ModelFormat.TORCH
    assert loaded.predictor.predict(x).tolist() == _torch_labels(net, x)


@pytest.mark.parametrize("compile_", ["script", "trace"])
def test_torchscript(tmp_path: Path, compile_: str, x) -> None:
    net = make_net(act=torch.nn.ReLU)
    compiled = script(net) if compile_ == "script" else trace(net, torch.as_tensor(x[:1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(compiled, tmp_path / "ts.pt")
    loaded = load_model(tmp_path / "ts.pt")
    assert loaded.format is ModelFormat.TORCHSCRIPT
    assert loaded.predictor.predict(x).tolist() == _torch_labels(net, x)
    # its pickles name __torch__ classes, which TorchScript resolves from its own code
    assert all(f.severity < Severity.MEDIUM for f in loaded.report.findings)
    with torch.no_grad():
        hidden = torch.relu(net[0](torch.as_tensor(x))).numpy()
    np.testing.assert_allclose(loaded.predictor.representations(x), hidden, atol=1e-6)


def test_state_dict_and_safetensors_fill_arch(tmp_path: Path, net, x) -> None:
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    safetensors.torch.save_file(net.state_dict(), tmp_path / "w.safetensors")
    for name, fmt in (("sd.pt", ModelFormat.TORCH), ("w.safetensors", ModelFormat.SAFETENSORS)):
        loaded = load_model(tmp_path / name, arch=_arch)
        assert loaded.format is fmt
        assert loaded.predictor.predict(x).tolist() == _torch_labels(net, x)
        np.testing.assert_allclose(loaded.predictor.predict_proba(x),
                                   torch.softmax(net(torch.as_tensor(x)), 1).detach().numpy(),
                                   atol=1e-6)
        with pytest.raises(ModelError, match="pass arch="):
            load_model(tmp_path / name)
        with pytest.raises(ModelFormatError, match=r"do not fit arch\(\)"):
            load_model(tmp_path / name, arch=lambda: torch.nn.Sequential(torch.nn.Linear(4, 2)))
        with pytest.raises(ModelError, match=r"not a torch\.nn\.Module"):
            load_model(tmp_path / name, arch=dict)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_pickle_joblib_and_skops(tmp_path: Path, mlp, table) -> None:
    X, y = table
    lr = LogisticRegression().fit(X, y)
    (tmp_path / "mlp.pkl").write_bytes(pickle.dumps(mlp))
    joblib.dump(lr, tmp_path / "lr.joblib")
    (tmp_path / "lr.skops").write_bytes(skops.io.dumps(lr))
    (tmp_path / "mlp.skops").write_bytes(skops.io.dumps(mlp))
    for name, fmt, estimator in (("mlp.pkl", ModelFormat.PICKLE, mlp),
                                 ("lr.joblib", ModelFormat.JOBLIB, lr),
                                 ("lr.skops", ModelFormat.SKOPS, lr),
                                 ("mlp.skops", ModelFormat.SKOPS, mlp)):
        loaded = load_model(tmp_path / name)
        p = loaded.predictor
        assert loaded.format is fmt and p.spec.labels == ("ant", "bee", "cat")
        assert [p.spec.label(int(i)) for i in p.predict(X)] == estimator.predict(X).tolist()
        np.testing.assert_array_equal(p.predict_proba(X), estimator.predict_proba(X))
        assert isinstance(p, Representable) == (estimator is mlp)


def test_onnx(tmp_path: Path, x) -> None:
    (tmp_path / "m.onnx").write_bytes(linear())
    loaded = load_model(tmp_path / "m.onnx")
    assert loaded.format is ModelFormat.ONNX
    assert loaded.predictor.predict(x).tolist() == reference_logits(x).argmax(1).tolist()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy (TorchScript) exporter
def test_onnx_exported_by_torch(tmp_path: Path, net, x) -> None:
    torch.onnx.export(net, (torch.as_tensor(x[:1]),), tmp_path / "net.onnx", dynamo=False,
                      input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    p = load_model(tmp_path / "net.onnx").predictor
    assert p.spec.shape == (4,) and p.spec.n_classes == 2
    np.testing.assert_allclose(p.predict_proba(x),
                               torch.softmax(net(torch.as_tensor(x)), 1).detach().numpy(),
                               atol=1e-5)


def test_a_declared_spec_is_kept(tmp_path: Path, net, x) -> None:
    torch.save(net, tmp_path / "net.pt")
    spec = InputSpec(shape=(4,), value_range=(-5.0, 5.0), labels=("no", "yes"))
    assert load_model(tmp_path / "net.pt", spec=spec).predictor.spec is spec
    (tmp_path / "m.onnx").write_bytes(linear())
    assert load_model(tmp_path / "m.onnx", spec=spec).predictor.spec is spec


def test_from_bytes(net, x) -> None:
    buffer = io.BytesIO()
    torch.save(net, buffer)
    loaded = load_model_bytes(buffer.getvalue(), name="blob:net")
    assert loaded.predictor.predict(x).tolist() == _torch_labels(net, x)
    assert loaded.report.files[0].location.path == "blob:net"


# ---------------------------------------------------------------------- refused, unrun


@pytest.mark.parametrize("payload", [Payload, OpenPayload])
def test_malicious_pickles_are_refused_unrun(tmp_path: Path, canary: Path, payload) -> None:
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(payload(canary)))
    torch.save({"w": torch.zeros(1), "x": payload(canary)}, tmp_path / "evil.pt")
    joblib.dump({"w": np.zeros(3), "x": payload(canary)}, tmp_path / "evil.joblib")
    for name in ("evil.pkl", "evil.pt", "evil.joblib"):
        with pytest.raises(UnsafeModelError, match=r"refusing to load .*evil") as err:
            load_model(tmp_path / name)
        assert err.value.exit_code == 1
        assert err.value.findings and err.value.findings[0].severity is Severity.CRITICAL
        assert err.value.findings[0].rule == "pickle.global.dangerous"
    assert not canary.exists()


def test_a_custom_class_is_refused_unless_the_policy_allows_it(tmp_path: Path, x) -> None:
    torch.save(Custom(), tmp_path / "custom.pt")
    with pytest.raises(UnsafeModelError, match=r"pickle\.global"):
        load_model(tmp_path / "custom.pt")
    allowed = Policy.default().allowing([f"{Custom.__module__}.{Custom.__qualname__}"])
    loaded = load_model(tmp_path / "custom.pt", policy=allowed)
    assert loaded.predictor.predict(x).shape == (7,)


class Custom(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.fc(t)


def test_torchscript_that_writes_files_is_refused(tmp_path: Path, canary: Path, x) -> None:
    class Writer(torch.nn.Module):
        def __init__(self, path: str) -> None:
            super().__init__()
            self.path = path

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            torch.save(t, self.path)
            return t

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(script(Writer(str(canary))), tmp_path / "writer.pt")
    with pytest.raises(UnsafeModelError, match=r"torchscript\.file-access") as err:
        load_model(tmp_path / "writer.pt")
    assert err.value.findings[0].location.member.endswith(".py")
    assert not canary.exists()


def _skops_with(retarget: tuple[str, str], new: tuple[str, str], data: bytes) -> bytes:
    """``data`` with every schema node naming ``retarget`` (module, name) naming ``new``."""
    archive = zipfile.ZipFile(io.BytesIO(data))

    def edit(node: object) -> None:
        if isinstance(node, dict):
            if (node.get("__module__"), node.get("__class__")) == retarget:
                node["__module__"], node["__class__"] = new
            for value in node.values():
                edit(value)
        elif isinstance(node, list):
            for value in node:
                edit(value)

    schema = json.loads(archive.read("schema.json"))
    edit(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in archive.infolist():
            z.writestr(info, json.dumps(schema) if info.filename == "schema.json"
                       else archive.read(info))
    return out.getvalue()


def test_skops_types_the_policy_refuses(tmp_path: Path, canary: Path) -> None:
    safe_looking = skops.io.dumps(FunctionTransformer(np.round).fit(np.ones((3, 2))))
    (tmp_path / "round.skops").write_bytes(safe_looking)  # a function, not a reviewed ufunc
    with pytest.raises(UnsafeModelError, match=r"numpy\.round") as err:
        load_model(tmp_path / "round.skops")
    assert err.value.findings[0].rule == "model.skops.untrusted-type"
    # a NumPy ufunc is on the reviewed list (function.ufunc): it loads and computes
    x, y = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]]), np.array([0, 1, 0, 1])
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()).fit(x, y)
    (tmp_path / "log1p.skops").write_bytes(skops.io.dumps(model))
    loaded = load_model(tmp_path / "log1p.skops")
    assert loaded.predictor.predict(x).tolist() == model.predict(x).tolist()
    evil = _skops_with(("numpy", "round"), ("posix", "system"), safe_looking)
    assert b"posix" in zipfile.ZipFile(io.BytesIO(evil)).read("schema.json")
    (tmp_path / "evil.skops").write_bytes(evil)
    with pytest.raises(UnsafeModelError, match=r"posix\.system") as err:
        load_model(tmp_path / "evil.skops")
    assert err.value.findings[0].severity is Severity.CRITICAL
    assert not canary.exists()


def test_the_bytes_are_read_once(tmp_path: Path, canary: Path, net, x,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A file swapped for a malicious one right after the scan cannot be what is loaded."""
    path = tmp_path / "model.pt"
    torch.save(net, path)
    original = path.read_bytes()
    real_scan = bastion.scan.scan_bytes

    def scan_then_swap(data: bytes, name: str, **kwargs: object):
        report = real_scan(data, name, **kwargs)
        torch.save({"x": Payload(canary)}, path)  # the attacker wins the race
        return report

    monkeypatch.setattr(bastion.scan, "scan_bytes", scan_then_swap)
    loaded = load_model(path)
    assert path.read_bytes() != original
    assert loaded.sha256 == hashlib.sha256(original).hexdigest()
    assert loaded.predictor.predict(x).tolist() == _torch_labels(net, x)
    assert not canary.exists()


# ------------------------------------------------------------------ clear errors


def test_oversize(tmp_path: Path, net) -> None:
    torch.save(net, tmp_path / "net.pt")
    size = (tmp_path / "net.pt").stat().st_size
    with pytest.raises(ModelFormatError, match=f"{size} bytes is more than the 100"):
        load_model(tmp_path / "net.pt", max_bytes=100)
    with pytest.raises(ModelFormatError, match="more than the 10"):
        load_model_bytes(b"x" * 11, max_bytes=10)


def test_truncated_files_are_refused(tmp_path: Path, net, mlp) -> None:
    buffer = io.BytesIO()
    torch.save(net, buffer)
    (tmp_path / "cut.pt").write_bytes(buffer.getvalue()[:-200])
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps(mlp)[:-50])
    (tmp_path / "cut.onnx").write_bytes(linear()[:-40])
    for name in ("cut.pt", "cut.pkl", "cut.onnx"):
        with pytest.raises(ModelError, match=name) as err:
            load_model(tmp_path / name)
        assert isinstance(err.value, UnsafeModelError | ModelFormatError)


def test_directories_unknown_and_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"is a directory.*ONNX, safetensors"):
        load_model(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a model at all")
    with pytest.raises(ModelFormatError, match=r"junk\.pt: an unrecognised format"):
        load_model(tmp_path / "junk.pt")
    (tmp_path / "a.zip").write_bytes(_zip({"readme.txt": b"hello"}))
    with pytest.raises(ModelFormatError, match="zip content, not a model format"):
        load_model(tmp_path / "a.zip")
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    with pytest.raises(ModelFormatError, match="holds a dict, not a model"):
        load_model(tmp_path / "dict.pkl")


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ModelFormatError, match="not a regular file"):
        load_model(tmp_path / "pipe")


def test_the_gate(tmp_path: Path) -> None:
    (tmp_path / "junk.bin").write_bytes(b"not a model at all")  # one info finding
    with pytest.raises(UnsafeModelError, match=r"scan\.format\.unknown"):
        load_model(tmp_path / "junk.bin", gate=Severity.INFO)


def test_onnx_external_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(np.zeros((4, 2), np.float32).tobytes())
    (tmp_path / "ext.onnx").write_bytes(linear(external=True))
    with pytest.raises(ModelFormatError, match="other files, which were not scanned"):
        load_model(tmp_path / "ext.onnx")


def test_a_missing_optional_package_names_the_extra(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "m.onnx").write_bytes(linear())
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(MissingDependencyError, match="onnxruntime") as err:
        load_model(tmp_path / "m.onnx")
    assert "bastion-ml[models]" in (err.value.hint or "")
    assert isinstance(err.value, BastionError)


def test_the_unpickler_refuses_what_a_lenient_scan_let_through(
        tmp_path: Path, canary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: were the scan ever to pass a payload, the loader still refuses it."""
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Payload(canary)))
    (tmp_path / "broken.pkl").write_bytes(b"\x80\x04\x95garbage")
    real_scan = bastion.scan.scan_bytes

    def blind_scan(data: bytes, name: str, **kwargs: object):
        report = real_scan(data, name, **kwargs)
        return type(report)((), report.files, report.elapsed_s)  # every finding dropped

    monkeypatch.setattr(bastion.scan, "scan_bytes", blind_scan)
    with pytest.raises(UnsafeModelError, match=r"refusing to import posix\.system") as err:
        load_model(tmp_path / "evil.pkl")
    assert err.value.findings == ()
    with pytest.raises(ModelFormatError, match="cannot load it as pickle"):
        load_model(tmp_path / "broken.pkl")
    assert not canary.exists()


def test_files_holding_something_else(tmp_path: Path) -> None:
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ModelFormatError, match="holds a list, not a model"):
        load_model(tmp_path / "list.pt")
    (tmp_path / "bad.skops").write_bytes(_zip({"schema.json": b"{not json"}))
    with pytest.raises(ModelFormatError, match="skops schema cannot be read"):
        load_model(tmp_path / "bad.skops")
