"""Load a model file for use: read it once, scan those bytes, then a safe loader (fails closed).

    >>> from bastion.models import load_model
    >>> loaded = load_model("classifier.onnx")                     # doctest: +SKIP
    >>> loaded.format.value, loaded.sha256[:12], loaded.report.clean  # doctest: +SKIP
    ('onnx', '3f2a9c01d4e7', True)
    >>> loaded.predictor.predict(x)                                 # doctest: +SKIP

A model file is code: ``pickle.load`` or ``torch.load(weights_only=False)`` runs whatever it
names. Here nothing is loaded before the scanner has read the very bytes that will be loaded
(DESIGN.md invariant 1), and then only through a loader that cannot run more than the scan
allowed: the restricted unpickler under the same policy, or a format that holds no code
(safetensors, ONNX, skops with its types checked against the policy, TorchScript with its
code reviewed). See ``docs/models.md``.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import io
import os
import stat
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bastion import atlas
from bastion.errors import BastionError
from bastion.findings import Finding, Location, Principle, Severity
from bastion.models.interface import (
    InputSpec,
    MissingDependencyError,
    ModelError,
    ModelFormatError,
    Predictor,
    UnsafeModelError,
)

if TYPE_CHECKING:
    from bastion.scan import Format, Policy, ScanReport

__all__ = ["MAX_BYTES", "LoadedModel", "ModelFormat", "load_model", "load_model_bytes"]

MAX_BYTES: Final = 4 * 1024**3
"""The largest model file read by default (the whole file is held in memory)."""

_SUPPORTED: Final = ("ONNX, safetensors (with arch=…), skops, TorchScript, torch.save of a "
                     "whole module (or of a state dict, with arch=…), pickle or joblib")

Arch = Callable[[], Any]
"""Builds the empty ``torch.nn.Module`` that safetensors weights (or a state dict) fill."""


class ModelFormat(enum.StrEnum):
    """How a model was loaded."""

    PICKLE = "pickle"
    JOBLIB = "joblib"
    TORCH = "torch"
    """``torch.save`` of a whole module or a state dict (zip or legacy format)."""
    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"
    SAFETENSORS = "safetensors"
    SKOPS = "skops"


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model ready for use, bound to the exact bytes it was loaded from."""

    predictor: Predictor
    """The model, behind the :class:`~bastion.models.interface.Predictor` protocol (check
    ``isinstance(p, Differentiable)`` / ``Representable`` for more)."""
    format: ModelFormat
    """Which loader read it."""
    sha256: str
    """SHA-256 of the bytes that were scanned and loaded (its identity, invariant 3)."""
    size: int
    """Their length in bytes."""
    report: ScanReport
    """The scan of those bytes, with the loader's own checks (TorchScript code) added: every
    finding is below the gate it was loaded under."""


def load_model(
    path: str | os.PathLike[str],
    *,
    arch: Arch | None = None,
    spec: InputSpec | None = None,
    gate: Severity = Severity.HIGH,
    max_bytes: int = MAX_BYTES,
    policy: Policy | None = None,
) -> LoadedModel:
    """Load the model in the file ``path``: read once, scanned, then loaded safely.

    Args:
        path: one model file (a directory is refused: name the weights file in it).
        arch: for safetensors weights or a ``torch.save``'d state dict, a callable that
            builds the empty ``torch.nn.Module`` they fill.
        spec: what the model takes, when the file does not say (shape, value range,
            class labels); default read from the model.
        gate: refuse the file when any finding is at or above this severity.
        max_bytes: refuse files larger than this (the whole file is held in memory).
        policy: the globals allowlist for pickles and skops types (default: the scanner's).

    Raises:
        UnsafeModelError: the scan found something at or above ``gate`` (exit code 1).
        ModelFormatError: not a file, too big, not a model format, or damaged.
        MissingDependencyError: the format needs an optional package.
        ModelError: anything else that keeps the model from being used.
    """
    target = Path(path)
    data = _read_once(target, max_bytes)  # 1.
    return load_model_bytes(data, name=str(target), arch=arch, spec=spec, gate=gate,
                            max_bytes=max_bytes, policy=policy)


def load_model_bytes(
    data: bytes,
    *,
    name: str = "<bytes>",
    arch: Arch | None = None,
    spec: InputSpec | None = None,
    gate: Severity = Severity.HIGH,
    max_bytes: int = MAX_BYTES,
    policy: Policy | None = None,
) -> LoadedModel:
    """Load a model from bytes already in memory (a blob from the catalog, an upload).

    The same steps as :func:`load_model` from step 2 on; ``name`` labels findings and errors.

    Steps:

    1. (:func:`load_model`) read the file once into memory, refusing directories, special
       files and anything over ``max_bytes``; every later step sees only these bytes, so a
       file changed after the read cannot matter (the time-of-check/time-of-use gap that a
       scan-then-``torch.load(path)`` pipeline leaves open).
    2. Scan exactly these bytes (:func:`bastion.scan.scan_bytes`) under ``policy``. A
       TorchScript archive's pickles name ``__torch__`` classes, which only TorchScript's own
       unpickler resolves (the default policy allows them), and the scanner reviews the
       archive's code for operators that touch files or the network
       (``bastion.scan.formats.torchscript``).
    3. Refuse when any finding is at or above ``gate`` (fail closed: unreadable, truncated
       and over-limit content are findings too). ONNX external data is refused as well: it
       lives in other files, which were not scanned.
    4. Load with the loader for the format the scan sniffed from the content (never the
       name): pickle/joblib through the restricted unpickler under the same policy; a
       PyTorch zip through ``torch.jit.load`` (TorchScript) or ``torch.load`` with the
       restricted unpickler; ONNX through onnxruntime; safetensors into ``arch()``; skops
       trusting only types the policy allows.
    5. Wrap the model in its :class:`~bastion.models.interface.Predictor`.
    """
    from bastion.scan import Format, Policy, ScanReport, scan_bytes

    if len(data) > max_bytes:
        raise _too_big(name, len(data), max_bytes)
    policy = policy or Policy.default()
    from bastion.scan.formats.torchscript import is_torchscript

    names = _zip_names(data)
    report = scan_bytes(data, name, policy=policy)  # 2. (a TorchScript archive's code too)
    fmt = next((f.format for f in report.files if f.location.member is None), Format.UNKNOWN)
    torchscript = fmt is Format.TORCH_ZIP and names is not None and is_torchscript(names)
    findings = list(report.findings)
    blocking = [f for f in findings if f.severity >= gate]  # 3.
    if blocking:
        raise _refusal(name, blocking, gate)
    if fmt is Format.ONNX and any(f.rule.startswith("onnx.external-data") for f in findings):
        raise ModelFormatError(
            f"{name}: the ONNX model reads its weights from other files, which were not "
            "scanned; only a single self-contained file is loaded",
            hint="save it with onnx.save_model(model, path, save_as_external_data=False)")
    report = ScanReport(tuple(findings), report.files, report.elapsed_s)
    loaded, how = _load(data, name, fmt, names or (), torchscript, arch, spec, policy)  # 4.
    predictor = _wrap(loaded, name, spec)  # 5.
    digest = next((f.sha256 for f in report.files if f.location.member is None and f.sha256),
                  None) or hashlib.sha256(data).hexdigest()
    return LoadedModel(predictor, how, digest, len(data), report)


# ---------------------------------------------------------------------------------- step 1


def _too_big(name: str, size: int, max_bytes: int) -> ModelFormatError:
    return ModelFormatError(
        f"{name}: {size} bytes is more than the {max_bytes} this loader reads into memory",
        hint="raise max_bytes if the machine has the memory for it")


def _read_once(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, read once; never blocks on a FIFO, never reads past ``max_bytes``."""
    try:  # O_NONBLOCK: opening a FIFO does not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ModelError(f"{path} does not exist", hint="check the path") from None
    except OSError as exc:
        raise ModelFormatError(f"{path}: cannot open it ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ModelFormatError(
                f"{path} is a directory; a model is loaded from one file: {_SUPPORTED}",
                hint="name the weights file inside it (model.safetensors with arch=…, "
                     "model.onnx)")
        if not stat.S_ISREG(info.st_mode):
            raise ModelFormatError(f"{path} is not a regular file; devices and pipes are "
                                   "never read")
        if info.st_size > max_bytes:
            raise _too_big(str(path), info.st_size, max_bytes)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise ModelFormatError(f"{path}: cannot read it ({exc.strerror})") from None
    if len(data) > max_bytes:  # it grew while being read
        raise _too_big(str(path), len(data), max_bytes)
    return data


# ------------------------------------------------------------------------------ steps 2-3


def _zip_names(data: bytes) -> list[str] | None:
    """Member names when ``data`` is a readable zip (reading a directory runs nothing)."""
    if data[:4] != b"PK\x03\x04":
        return None
    try:
        return zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, ValueError, NotImplementedError, OSError):
        return None  # the scan reports why it cannot be read


def _refusal(name: str, blocking: Sequence[Finding], gate: Severity) -> UnsafeModelError:
    first = blocking[0]
    where = f" in {first.location.member}" if first.location and first.location.member else ""
    more = f" and {len(blocking) - 1} more" if len(blocking) > 1 else ""
    return UnsafeModelError(
        f"refusing to load {name}: {first.rule} ({first.severity.value}){where}: "
        f"{first.title}{more}; nothing in it was run",
        findings=blocking,
        hint=f"see `bastion scan {name}`; findings at or above {gate.value} block loading. "
             f"{first.remediation}".strip())


# ---------------------------------------------------------------------------------- step 4


def _optional(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"loading this model needs {module.partition('.')[0]}, which is not installed "
            f"({exc})", hint=f"pip install 'bastion-ml[{extra}]'") from None


def _load(data: bytes, name: str, fmt: Format, names: Sequence[str], torchscript: bool,
          arch: Arch | None, spec: InputSpec | None, policy: Policy,
          ) -> tuple[Any, ModelFormat]:
    """The model object in ``data``, by the loader for ``fmt``; every failure a ModelError."""
    from bastion.scan import Format

    try:
        if fmt is Format.PICKLE:
            from bastion.scan.pickle import restricted

            return restricted.loads(data, policy=policy), ModelFormat.PICKLE
        if fmt is Format.JOBLIB:
            from bastion.models import _joblib

            return _joblib.loads(data, policy=policy), ModelFormat.JOBLIB
        if fmt is Format.TORCH_ZIP and torchscript:
            torch = _optional("torch", "torch")
            with warnings.catch_warnings():  # TorchScript is deprecated upstream, still common
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(io.BytesIO(data), map_location="cpu")
            return module, ModelFormat.TORCHSCRIPT
        if fmt in (Format.TORCH_ZIP, Format.TORCH_LEGACY):
            return _torch_load(data, arch, policy), ModelFormat.TORCH
        if fmt is Format.ONNX:
            from bastion.models.onnx_model import OnnxPredictor

            return OnnxPredictor.from_bytes(data, spec=spec), ModelFormat.ONNX
        if fmt is Format.SAFETENSORS:
            if arch is None:
                raise ModelError(
                    f"{name} holds safetensors weights only, without the network they fill",
                    hint="pass arch=, a callable that builds the empty torch.nn.Module",
                    param="arch")
            st = _optional("safetensors.torch", "models")
            return _fill(arch, st.load(data), name), ModelFormat.SAFETENSORS
        if fmt is Format.ZIP and "schema.json" in names:
            return _skops_load(data, name, policy), ModelFormat.SKOPS
    except BastionError as exc:
        if isinstance(exc, ModelError):
            raise
        # the restricted unpickler refused what the scan passed: refuse, never fall back
        raise UnsafeModelError(f"refusing to load {name}: {exc.message}", findings=(),
                               hint=exc.hint) from exc
    except Exception as exc:  # malformed bytes make loaders raise anything
        raise ModelFormatError(
            f"{name}: cannot load it as {fmt.value}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}",
            hint="the file may be damaged or written by an incompatible version") from exc
    what = "an unrecognised format" if fmt is Format.UNKNOWN else f"{fmt.value} content"
    raise ModelFormatError(f"{name}: {what}, not a model format Bastion loads",
                           hint=f"supported: {_SUPPORTED}")


def _torch_load(data: bytes, arch: Arch | None, policy: Policy) -> Any:
    """``torch.load`` with every import judged by the restricted unpickler under ``policy``."""
    torch = _optional("torch", "torch")
    from bastion.scan.pickle import restricted

    # extra keyword arguments reach the pickle module's Unpickler: the policy goes with them
    obj = torch.load(io.BytesIO(data), map_location="cpu", pickle_module=restricted,
                     weights_only=False, policy=policy)
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if arch is None:
            raise ModelError(
                "the file holds a state dict (weights only), without the network they fill",
                hint="pass arch=, a callable that builds the empty torch.nn.Module, or save "
                     "the whole module with torch.save(model, path)", param="arch")
        return _fill(arch, obj, "the state dict")
    return obj  # _wrap says what it is instead


def _fill(arch: Arch, weights: dict[str, Any], name: str) -> Any:
    """``arch()`` with ``weights`` loaded, every parameter and buffer matched (strict)."""
    torch = _optional("torch", "torch")
    module = arch()
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"arch() returned a {type(module).__name__}, not a torch.nn.Module",
                         hint="pass the class of the network, or a function that builds it")
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise ModelFormatError(f"{name}: the weights do not fit arch(): {detail}",
                               hint="build the same architecture the weights were saved "
                                    "from") from None
    return module


def _skops_load(data: bytes, name: str, policy: Policy) -> Any:
    """``skops.io.loads`` trusting exactly the types the policy allows, refusing the rest.

    Every type the schema names is checked (skops' own trusted defaults too: they include
    functions such as ``numpy.log1p`` the pickle policy does not allow), as is every type
    ``skops.io.get_untrusted_types`` reports.
    """
    sio = _optional("skops.io", "models")
    import json

    try:
        schema = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))
    except (ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelFormatError(f"{name}: the skops schema cannot be read ({exc})") from exc
    named: set[str] = set()
    _schema_types(schema, named)
    untrusted = list(sio.get_untrusted_types(data=data))
    refused = sorted(t for t in named | set(untrusted)
                     if not policy.verdict(*_split(t)).allowed)
    if refused:
        raise UnsafeModelError(
            f"refusing to load {name}: the skops file names types the policy does not "
            f"allow: {', '.join(refused)[:400]}; nothing in it was run",
            findings=[_skops_finding(name, t, policy) for t in refused],
            hint="allow them with a policy file only if you trust the file's author")
    return sio.loads(data, trusted=untrusted)


def _schema_types(node: object, out: set[str]) -> None:
    if isinstance(node, dict):
        module, cls = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            out.add(f"{module}.{cls}")
        for value in node.values():
            _schema_types(value, out)
    elif isinstance(node, list):
        for value in node:
            _schema_types(value, out)


def _split(qualified: str) -> tuple[str, str]:
    module, _, name = qualified.rpartition(".")
    return module, name


def _skops_finding(name: str, qualified: str, policy: Policy) -> Finding:
    verdict = policy.verdict(*_split(qualified))
    return Finding(
        rule="model.skops.untrusted-type", severity=verdict.severity,
        title=f"the skops file names {qualified}: {verdict.reason}",
        principle=Principle.P2_2, location=Location(name, "schema.json"),
        techniques=(atlas.SUPPLY_CHAIN_MODEL, atlas.UNSAFE_ARTIFACTS),
        remediation="Do not load it unless you trust its author; then allow the type in a "
                    "policy file.",
        evidence={"type": qualified})


# ---------------------------------------------------------------------------------- step 5


def _wrap(model: Any, name: str, spec: InputSpec | None) -> Predictor:
    from bastion.models.predictors import as_predictor

    if isinstance(model, Predictor):  # ONNX: built as a predictor already
        return model
    try:
        return as_predictor(model, spec=spec)
    except ModelError as exc:
        raise ModelFormatError(
            f"{name} holds a {type(model).__name__}, not a model Bastion can use "
            f"({exc.message})", hint=f"supported: {_SUPPORTED}") from exc
