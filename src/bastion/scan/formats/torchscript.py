"""TorchScript archives: how to tell one, what its pickles may name, and a review of its code.

A TorchScript archive is a PyTorch zip that also holds ``constants.pkl`` (PyTorch's own test,
``torch.serialization._is_torchscript_zip``) and ``code/``: TorchScript source, compiled and
run by PyTorch's interpreter. Two consequences for loading one:

* its pickles are read by TorchScript's C++ unpickler, which resolves ``__torch__.*`` to the
  classes compiled from the archive's own ``code/`` and ``torch.jit._pickle.*`` to its list
  builders; nothing is imported from Python. The default policy allows those names
  (``pickle.policy.TORCHSCRIPT_MODULES`` / ``TORCHSCRIPT_NAMES``: Python's unpickler cannot
  import ``__torch__`` at all), and ``bastion.models`` loads such an archive only with
  ``torch.jit.load``.
* its code cannot import Python, but TorchScript operators are not all pure: ``aten::save``
  writes a file, ``aten::from_file`` reads (and with ``shared=True`` maps) one, and operator
  namespaces beyond ``aten``/``prim``/``quantized`` reach the network (``c10d``) or need a
  native library. :func:`review_code` parses ``code/`` (``ast``, never executed) and reports
  every such use. It is a denylist over a small, closed vocabulary (TorchScript has no
  ``import``, no ``open``, no ``eval``), kept next to the allowlist the pickles go through.
"""

from __future__ import annotations

import ast
import zipfile
from collections.abc import Iterable
from typing import BinaryIO, Final

from bastion import atlas
from bastion.findings import Finding, Location, Principle, Severity

__all__ = ["is_torchscript", "review_code"]

_FILE_OPS: Final = frozenset({"save", "load", "from_file"})
"""``torch.save`` (``aten::save``) writes a file; ``from_file`` reads or maps one."""
_CORE_NAMESPACES: Final = frozenset({"aten", "prim", "quantized", "_quantized"})
_MAX_CODE_BYTES: Final = 64 << 20
"""Most TorchScript source read from one archive (a ResNet's is about 200 kB)."""
_TECHNIQUES: Final = (atlas.SUPPLY_CHAIN_MODEL, atlas.UNSAFE_ARTIFACTS)


def is_torchscript(names: Iterable[str]) -> bool:
    """Whether a PyTorch zip with these member names is TorchScript (holds constants.pkl)."""
    return any(name.partition("/")[2] == "constants.pkl" for name in names)


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _judge(dotted: str) -> tuple[str, Severity, str] | None:
    """(rule, severity, why) for a dotted name the code uses, or ``None`` when harmless."""
    parts = dotted.split(".")
    if len(parts) == 2 and parts[0] == "torch" and parts[1] in _FILE_OPS:
        return ("torchscript.file-access", Severity.CRITICAL,
                f"{dotted} reads or writes files when the model runs")
    if parts[:2] == ["torch", "ops"]:
        parts = parts[1:]
    if parts[0] == "ops" and len(parts) >= 2:
        namespace = parts[1]
        if namespace not in _CORE_NAMESPACES:
            return ("torchscript.operator", Severity.HIGH,
                    f"calls operators of the {namespace!r} namespace, outside PyTorch's core "
                    "(distributed ops reach the network; others need a native library)")
        if len(parts) >= 3 and parts[2] in _FILE_OPS:
            return ("torchscript.file-access", Severity.CRITICAL,
                    f"{dotted} reads or writes files when the model runs")
    if parts[:2] == ["torch", "classes"]:
        return ("torchscript.operator", Severity.HIGH,
                "uses a custom TorchScript class (native code registered outside PyTorch)")
    return None


def _judge_node(node: ast.AST) -> tuple[str, Severity, str] | None:
    if isinstance(node, ast.Attribute):
        dotted = _dotted(node)
        return _judge(dotted) if dotted else None
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "getattr" and node.args
            and isinstance(node.args[0], ast.Name | ast.Attribute)):
        # getattr(self, "0") is how TorchScript names a Sequential's children; on torch or
        # ops it would pick an operator by name, past the check above
        root = _dotted(node.args[0])
        if root is not None and root.split(".")[0] in ("torch", "ops"):
            return ("torchscript.operator", Severity.HIGH,
                    f"looks up an operator of {root} by name (getattr)")
    return None


def review_code(stream: BinaryIO, location: Location) -> list[Finding]:
    """Findings for the TorchScript archive in ``stream`` (at ``location``) whose code does
    more than compute.

    Steps: 1. read the ``code/`` sources within a size budget (over it: a finding, fail
    closed); 2. parse each as Python syntax, never executing it (unparseable: a finding);
    3. judge every dotted name used (:func:`_judge`).
    """
    found: dict[tuple[str, str], Finding] = {}

    def add(rule: str, severity: Severity, title: str, member: str) -> None:
        found.setdefault((rule, title), Finding(
            rule=rule, severity=severity, title=title, principle=Principle.P2_2,
            detail="TorchScript cannot import Python, but these operators act outside the "
                   "model when it runs.",
            location=Location(location.path, "!".join(filter(None, [location.member, member]))),
            techniques=_TECHNIQUES,
            remediation="Do not load it; export the model to ONNX or safetensors weights "
                        "from a trusted source."))

    try:
        archive = zipfile.ZipFile(stream)
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, NotImplementedError) as exc:
        add("torchscript.unreadable", Severity.HIGH,
            f"the TorchScript archive cannot be read: {exc}", "")
        return list(found.values())
    budget = _MAX_CODE_BYTES
    for info in infos:
        relative = info.filename.partition("/")[2]
        if not (relative.startswith("code/") and relative.endswith(".py")):
            continue
        budget -= info.file_size  # 1.
        if budget < 0:
            add("torchscript.limit", Severity.HIGH,
                f"more than {_MAX_CODE_BYTES} bytes of TorchScript code; not reviewed",
                info.filename)
            break
        try:
            tree = ast.parse(archive.read(info).decode("utf-8"), info.filename)  # 2.
        except (SyntaxError, UnicodeDecodeError, ValueError, zipfile.BadZipFile,
                NotImplementedError, OSError) as exc:
            add("torchscript.unreadable", Severity.HIGH,
                f"TorchScript code that cannot be parsed: {exc.__class__.__name__}",
                info.filename)
            continue
        for node in ast.walk(tree):  # 3.
            verdict = _judge_node(node)
            if verdict is not None:
                add(*verdict, info.filename)
    return list(found.values())
