"""Fixture builders for the scanner: benign files made by real libraries, malicious ones crafted.

Each :class:`Case` writes one file into a directory and names the finding expected (``rule``
and a subset of its ``evidence``); benign cases expect no finding at medium or above. Malicious
payloads only ever create the ``canary`` file (``touch``-like), so running one by mistake is
harmless and detectable. ``bench/scan_peers.py`` imports this module to compare scanners.

    cases = write_corpus(tmp_path / "corpus", tmp_path / "CANARY")
"""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BENIGN", "MALICIOUS", "Case", "Written", "write_corpus"]


@dataclass(frozen=True)
class Case:
    """One fixture: a file name, how to write it, and the finding it must produce."""

    name: str
    family: str
    build: Callable[[Path, Path], None]
    """(path to write, canary path) → writes the file."""
    rule: str | None = None
    """The rule of the expected finding; ``None`` for benign files."""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    """Keys the expected finding's evidence must contain with these values."""


@dataclass(frozen=True)
class Written:
    case: Case
    path: Path


# -- opcode helpers (protocol numbers as CPython writes them) ----------------------------------
PROTO2, PROTO4 = b"\x80\x02", b"\x80\x04"
MARK, STOP, REDUCE, TUPLE, TUPLE1, TUPLE2, POP = b"(", b".", b"R", b"t", b"\x85", b"\x86", b"0"
EMPTY_DICT, BUILD, STACK_GLOBAL, MEMOIZE = b"}", b"b", b"\x93", b"\x94"


def g(module: str, name: str) -> bytes:
    """GLOBAL module name."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def u(text: str) -> bytes:
    """BINUNICODE text."""
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def binput(i: int) -> bytes:
    return b"q" + bytes([i])


def binget(i: int) -> bytes:
    return b"h" + bytes([i])


def touch_cmd(canary: Path) -> str:
    return f"touch {canary}"


def touch_py(canary: Path) -> str:
    return f"open({str(canary)!r}, 'w').close()"


class _Reduce:
    """An object whose pickle calls ``func(*args)`` (what real-world payloads look like)."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


# -- malicious builders ---------------------------------------------------------------------
def os_system_p0(path: Path, canary: Path) -> None:
    path.write_bytes(pickle.dumps(_Reduce(os.system, touch_cmd(canary)), protocol=0))


def os_system_p5(path: Path, canary: Path) -> None:
    path.write_bytes(pickle.dumps(_Reduce(os.system, touch_cmd(canary)), protocol=5))


def builtin_eval_p2(path: Path, canary: Path) -> None:
    # protocol 2 spells it __builtin__.eval; the unpickler maps it to builtins.eval
    path.write_bytes(PROTO2 + g("__builtin__", "eval") + u(touch_py(canary)) + TUPLE1 + REDUCE
                     + STOP)


def builtin_exec_p4(path: Path, canary: Path) -> None:
    path.write_bytes(pickle.dumps(_Reduce(exec, touch_py(canary)), protocol=4))


def subprocess_popen(path: Path, canary: Path) -> None:
    path.write_bytes(PROTO2 + g("subprocess", "check_call") + MARK + u("touch") + u(str(canary))
                     + b"l" + TUPLE1 + REDUCE + STOP)


def getattr_chain(path: Path, canary: Path) -> None:
    # getattr(__import__("os"), "system")("touch canary"): the callable is a call's result
    imp = g("builtins", "__import__") + u("os") + TUPLE1 + REDUCE
    system = g("builtins", "getattr") + imp + u("system") + TUPLE2 + REDUCE
    path.write_bytes(PROTO2 + system + u(touch_cmd(canary)) + TUPLE1 + REDUCE + STOP)


def memo_stack_global(path: Path, canary: Path) -> None:
    # decoy names first, memoised; the real ones come back from the memo in swapped slots
    body = (u("collections") + binput(0) + u("OrderedDict") + binput(1) + POP + POP
            + u("system") + binput(2) + POP + u("os") + binput(3) + POP
            + binget(3) + binget(2) + STACK_GLOBAL + u(touch_cmd(canary)) + TUPLE1 + REDUCE)
    path.write_bytes(PROTO4 + body + STOP)


def assembled_stack_global(path: Path, canary: Path) -> None:
    # the module name is the result of a call (str.join), not a string in the stream
    module = g("_operator", "add") + u("o") + u("s") + TUPLE2 + REDUCE
    body = module + u("system") + STACK_GLOBAL + u(touch_cmd(canary)) + TUPLE1 + REDUCE
    path.write_bytes(PROTO4 + body + STOP)


def inst_opcode(path: Path, canary: Path) -> None:
    path.write_bytes(MARK + u(touch_cmd(canary)) + b"ios\nsystem\n" + STOP)


def obj_opcode(path: Path, canary: Path) -> None:
    path.write_bytes(PROTO2 + MARK + g("os", "system") + u(touch_cmd(canary)) + b"o" + STOP)


def newobj_ex(path: Path, canary: Path) -> None:
    path.write_bytes(PROTO4 + g("subprocess", "Popen") + MARK + u("touch") + u(str(canary))
                     + b"l" + TUPLE1 + EMPTY_DICT + b"\x92" + STOP)


def second_pickle(path: Path, canary: Path) -> None:
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4)
                     + pickle.dumps(_Reduce(os.system, touch_cmd(canary)), protocol=4))


def payload_then_invalid(path: Path, canary: Path) -> None:
    # the call runs, then the unpickler meets 0xff and raises: the payload has already run
    path.write_bytes(PROTO2 + g("os", "system") + u(touch_cmd(canary)) + TUPLE1 + REDUCE
                     + b"\xff" + STOP)


def dotted_name(path: Path, canary: Path) -> None:
    # protocol 4 walks dotted names: torch.serialization.os.system is os.system
    body = u("torch.serialization") + u("os.system") + STACK_GLOBAL + u(touch_cmd(canary)) \
        + TUPLE1 + REDUCE
    path.write_bytes(PROTO4 + body + STOP)


def build_on_global(path: Path, canary: Path) -> None:
    del canary
    # BUILD with a slot state on an imported class: setattr(collections.OrderedDict, ...)
    state = b"N" + EMPTY_DICT + u("marker") + b"K\x01s" + TUPLE2
    path.write_bytes(PROTO2 + g("collections", "OrderedDict") + state + BUILD + STOP)


def extension_code(path: Path, canary: Path) -> None:
    path.write_bytes(PROTO2 + b"\x82\x01" + u(touch_cmd(canary)) + TUPLE1 + REDUCE + STOP)


def non_string_operand(path: Path, canary: Path) -> None:
    path.write_bytes(PROTO4 + b"K\x01" + u("system") + STACK_GLOBAL + u(touch_cmd(canary))
                     + TUPLE1 + REDUCE + STOP)


def discarded_call(path: Path, canary: Path) -> None:
    call = g("os", "system") + u(touch_cmd(canary)) + TUPLE1 + REDUCE
    path.write_bytes(PROTO2 + call + POP + b"N" + STOP)


def unknown_global(path: Path, canary: Path) -> None:
    del canary
    path.write_bytes(PROTO2 + g("mypackage.helpers", "rebuild") + b")" + REDUCE + STOP)


def torch_zip_payload(path: Path, canary: Path) -> None:
    import torch

    torch.save({"w": torch.ones(2), "x": _Reduce(os.system, touch_cmd(canary))}, path)


def torch_legacy_payload(path: Path, canary: Path) -> None:
    import torch

    torch.save({"w": torch.ones(2), "x": _Reduce(os.system, touch_cmd(canary))}, path,
               _use_new_zipfile_serialization=False)


def torch_zip_extra_member(path: Path, canary: Path) -> None:
    import torch

    torch.save({"w": torch.ones(2)}, path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(f"{path.stem}/extra.pkl", pickle.dumps(_Reduce(os.system, touch_cmd(canary))))


def _torch_zip_bytes(canary: Path) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"w": torch.ones(2), "x": _Reduce(os.system, touch_cmd(canary))}, buf)
    return buf.getvalue()


def zip_name_mismatch(path: Path, canary: Path) -> None:
    # rename data.pkl in its local header only: PyTorch still reads it, zipfile refuses it
    data = bytearray(_torch_zip_bytes(canary))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
    start = info.header_offset + 30
    name = bytes(data[start:start + len(info.filename)])
    data[start:start + len(name)] = name.replace(b"data.pkl", b"data.pkx")
    path.write_bytes(bytes(data))


def zip_crc_mismatch(path: Path, canary: Path) -> None:
    data = bytearray(_torch_zip_bytes(canary))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data.pkl"))
    crc_at = info.header_offset + 14  # in the local header, then in the central directory
    data[crc_at:crc_at + 4] = b"\0\0\0\0"
    pos = _central_entry(bytes(data), info.filename)
    data[pos + 16:pos + 20] = b"\0\0\0\0"
    path.write_bytes(bytes(data))


def _central_entry(data: bytes, name: str) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        pos = z.start_dir
    while data[pos:pos + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack("<HHH", data[pos + 28:pos + 34])
        if data[pos + 46:pos + 46 + n] == name.encode():
            return pos
        pos += 46 + n + m + k
    raise LookupError(name)


def nested_archives(path: Path, canary: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("model/weights.bin", pickle.dumps(_Reduce(os.system, touch_cmd(canary))))
    with tarfile.open(path, "w:gz") as t:
        info = tarfile.TarInfo("bundle/models.zip")
        info.size = len(inner.getvalue())
        t.addfile(info, io.BytesIO(inner.getvalue()))


def seven_zip(path: Path, canary: Path) -> None:
    import py7zr

    with py7zr.SevenZipFile(path, "w") as z:
        z.writestr(pickle.dumps(_Reduce(os.system, touch_cmd(canary))), "model.pkl")


def bz2_pickle(path: Path, canary: Path) -> None:
    path.write_bytes(bz2.compress(pickle.dumps(_Reduce(exec, touch_py(canary)))))


def npy_object_array(path: Path, canary: Path) -> None:
    array = np.array([1, _Reduce(os.system, touch_cmd(canary))], dtype=object)
    with path.open("wb") as f:
        np.save(f, array, allow_pickle=True)


def joblib_payload(path: Path, canary: Path) -> None:
    import joblib

    joblib.dump({"coef": np.ones((4, 3)), "hook": _Reduce(os.system, touch_cmd(canary)),
                 "bias": np.zeros(3)}, path)


def joblib_object_array(path: Path, canary: Path) -> None:
    import joblib

    joblib.dump({"coef": np.ones(5),
                 "objs": np.array([_Reduce(os.system, touch_cmd(canary)), 2], dtype=object)},
                path)


def joblib_compressed(path: Path, canary: Path) -> None:
    import joblib

    joblib.dump({"coef": np.ones(5), "hook": _Reduce(os.system, touch_cmd(canary))}, path,
                compress=3)


def pickle_zip_polyglot(path: Path, canary: Path) -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("payload.pkl", pickle.dumps(_Reduce(os.system, touch_cmd(canary))))
    path.write_bytes(pickle.dumps({"w": [1.0]}) + zipped.getvalue())


def gzip_pickle(path: Path, canary: Path) -> None:
    path.write_bytes(gzip.compress(pickle.dumps(_Reduce(os.system, touch_cmd(canary)))))


# -- regression samples from published bypasses of other scanners -----------------------------
def modelscan_85_build_setattr(path: Path, canary: Path) -> None:
    # protectai/modelscan#85: BUILD's slot state writes "os"/"system" onto numpy.prod, dotted
    # GLOBALs read them back, and STACK_GLOBAL takes its operands from the memo
    setattr_ = (b"N" + MARK + b"Va\nVos\nd" + TUPLE2 + BUILD + b"N" + MARK
                + b"Vb\nVsystem\nd" + TUPLE2 + BUILD)
    body = (g("numpy", "prod") + setattr_ + POP + g("numpy", "prod.a") + b"p0\n"
            + g("numpy", "prod.b") + b"p1\n" + POP + POP + b"g0\ng1\n" + STACK_GLOBAL
            + u(touch_cmd(canary)) + TUPLE1 + REDUCE)
    path.write_bytes(b"\x80\x05" + body + STOP)


def modelscan_330_numpy_builtins(path: Path, canary: Path) -> None:
    # protectai/modelscan#330: allowlisted-looking numpy names, BUILD on a function object,
    # then the builtins' eval reached through numpy.__builtins__
    body = (u("numpy") + u("size") + STACK_GLOBAL + MEMOIZE + MEMOIZE
            + u("numpy") + u("__builtins__") + STACK_GLOBAL + MEMOIZE + MEMOIZE
            + binget(1) + EMPTY_DICT + EMPTY_DICT + u("shape") + binget(3) + b"s" + TUPLE2
            + BUILD + binget(1) + binget(1) + u("eval") + TUPLE2 + REDUCE
            + u(touch_py(canary)) + TUPLE1 + REDUCE)
    path.write_bytes(PROTO4 + body + STOP)


def picklescan_14_memo_mix(path: Path, canary: Path) -> None:
    # mmaitre314/picklescan#14: BINPUT and MEMOIZE mixed so a scanner's memo model drifts
    body = (b"U\x02os" + binput(0) + b"U\x06system" + binput(1)
            + b"U\x0ctorch._utils" + MEMOIZE + b"U\x12_rebuild_tensor_v2" + MEMOIZE
            + POP + POP + POP + POP + binget(0) + binget(1) + STACK_GLOBAL
            + u(touch_cmd(canary)) + TUPLE1 + REDUCE)
    path.write_bytes(PROTO4 + body + STOP)


# -- benign builders (real libraries) ---------------------------------------------------------
def _net() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Conv1d(1, 2, 3),
                               torch.nn.BatchNorm1d(2), torch.nn.Dropout(0.1))


def torch_state_dict(path: Path, canary: Path) -> None:
    import torch

    net = _net()
    opt = torch.optim.Adam(net.parameters())
    torch.save({"model": net.state_dict(), "optim": opt.state_dict(), "epoch": 3}, path)


def torch_full_model(path: Path, canary: Path) -> None:
    import torch

    torch.save(_net(), path)


def torch_legacy_state_dict(path: Path, canary: Path) -> None:
    import torch

    torch.save(_net().state_dict(), path, _use_new_zipfile_serialization=False)


def torch_legacy_full_model(path: Path, canary: Path) -> None:
    import torch

    torch.save(_net(), path, _use_new_zipfile_serialization=False)


def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def sklearn_pipeline(path: Path, canary: Path) -> None:
    import joblib
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _iris()
    joblib.dump(make_pipeline(StandardScaler(), PCA(2), LogisticRegression(max_iter=300))
                .fit(x, y), path)


def sklearn_forest(path: Path, canary: Path) -> None:
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    x, y = _iris()
    joblib.dump(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y), path)


def sklearn_compressed(path: Path, canary: Path) -> None:
    import joblib
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = _iris()
    joblib.dump(GradientBoostingClassifier(n_estimators=3).fit(x, y), path, compress=3)


def sklearn_pickle(path: Path, canary: Path) -> None:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    x, y = _iris()
    models = [KNeighborsClassifier().fit(x, y), SVC().fit(x, y)]
    path.write_bytes(pickle.dumps(models, protocol=5))


def numpy_npy(path: Path, canary: Path) -> None:
    with path.open("wb") as f:
        np.save(f, np.arange(24, dtype=np.float32).reshape(2, 3, 4))


def numpy_object_npy(path: Path, canary: Path) -> None:
    with path.open("wb") as f:
        np.save(f, np.array([1, "a", None, [2.5]], dtype=object), allow_pickle=True)


def numpy_npz(path: Path, canary: Path) -> None:
    with path.open("wb") as f:
        np.savez(f, a=np.ones(3), b=np.array(["x", "yz"]))


def numpy_npz_compressed(path: Path, canary: Path) -> None:
    with path.open("wb") as f:
        np.savez_compressed(f, a=np.zeros((50, 50)))


def numpy_pickles_all_protocols(path: Path, canary: Path) -> None:
    data = [np.arange(5), np.float64(2.5), np.dtype("U3"), collections.OrderedDict(a=1)]
    path.write_bytes(b"".join(pickle.dumps(data, protocol=p) for p in range(6)))


def plain_text(path: Path, canary: Path) -> None:
    path.write_text("# model card\nnothing to run here\n")


BENIGN: tuple[Case, ...] = (
    Case("torch_state_dict.pt", "torch", torch_state_dict),
    Case("torch_full_model.pt", "torch", torch_full_model),
    Case("torch_legacy_state_dict.pt", "torch", torch_legacy_state_dict),
    Case("torch_legacy_full_model.pt", "torch", torch_legacy_full_model),
    Case("sklearn_pipeline.joblib", "joblib", sklearn_pipeline),
    Case("sklearn_forest.joblib", "joblib", sklearn_forest),
    Case("sklearn_compressed.joblib", "joblib", sklearn_compressed),
    Case("sklearn_models.pkl", "pickle", sklearn_pickle),
    Case("numpy_array.npy", "numpy", numpy_npy),
    Case("numpy_object_array.npy", "numpy", numpy_object_npy),
    Case("numpy_arrays.npz", "numpy", numpy_npz),
    Case("numpy_arrays_compressed.npz", "numpy", numpy_npz_compressed),
    Case("numpy_pickles_protocols_0_to_5.pkl", "pickle", numpy_pickles_all_protocols),
    Case("README.txt", "text", plain_text),
)

_OS = {"global": "posix.system"} if os.name == "posix" else {"global": "nt.system"}
MALICIOUS: tuple[Case, ...] = (
    Case("os_system_p0.pkl", "pickle", os_system_p0, "pickle.global.dangerous", _OS),
    Case("os_system_p5.bin", "pickle", os_system_p5, "pickle.global.dangerous", _OS),
    Case("builtin_eval_compat_p2.pkl", "pickle", builtin_eval_p2, "pickle.global.dangerous",
         {"global": "builtins.eval", "as_written": "__builtin__.eval"}),
    Case("builtin_exec_p4.pkl", "pickle", builtin_exec_p4, "pickle.global.dangerous",
         {"global": "builtins.exec"}),
    Case("subprocess_check_call.pkl", "pickle", subprocess_popen, "pickle.global.dangerous",
         {"global": "subprocess.check_call"}),
    Case("getattr_chain.pkl", "pickle", getattr_chain, "pickle.getattr.unvetted",
         {"attribute": "system", "called": True}),
    Case("memo_stack_global.pkl", "pickle", memo_stack_global, "pickle.global.dangerous",
         {"global": "os.system", "opcode": "STACK_GLOBAL"}),
    Case("assembled_stack_global.pkl", "pickle", assembled_stack_global,
         "pickle.global.indeterminate", {}),
    Case("inst_opcode.pkl", "pickle", inst_opcode, "pickle.global.dangerous",
         {"global": "os.system", "opcode": "INST"}),
    Case("obj_opcode.pkl", "pickle", obj_opcode, "pickle.global.dangerous",
         {"global": "os.system"}),
    Case("newobj_ex.pkl", "pickle", newobj_ex, "pickle.global.dangerous",
         {"global": "subprocess.Popen"}),
    Case("second_pickle.pkl", "pickle", second_pickle, "pickle.global.dangerous", _OS),
    Case("payload_then_invalid_opcode.pkl", "pickle", payload_then_invalid,
         "pickle.stream.invalid-opcode", {}),
    Case("dotted_name.pkl", "pickle", dotted_name, "pickle.global.dotted",
         {"global": "torch.serialization.os.system"}),
    Case("build_on_global.pkl", "pickle", build_on_global, "pickle.build.global",
         {"target": "collections.OrderedDict"}),
    Case("extension_code.pkl", "pickle", extension_code, "pickle.global.extension",
         {"code": 1}),
    Case("non_string_operand.pkl", "pickle", non_string_operand,
         "pickle.global.indeterminate", {"module": "int"}),
    Case("discarded_call.pkl", "pickle", discarded_call, "pickle.call.discarded",
         {"callable": "os.system"}),
    Case("unknown_global.pkl", "pickle", unknown_global, "pickle.global.unknown",
         {"global": "mypackage.helpers.rebuild"}),
    Case("torch_zip_payload.pt", "torch", torch_zip_payload, "pickle.global.dangerous", _OS),
    Case("torch_legacy_payload.pt", "torch", torch_legacy_payload, "pickle.global.dangerous",
         _OS),
    Case("torch_zip_extra_member.pt", "torch", torch_zip_extra_member,
         "pickle.global.dangerous", _OS),
    Case("zip_name_mismatch.pt", "archive", zip_name_mismatch, "archive.zip.name-mismatch", {}),
    Case("zip_crc_mismatch.pt", "archive", zip_crc_mismatch, "archive.zip.crc-mismatch", {}),
    Case("nested_archives.tar.gz", "archive", nested_archives, "pickle.global.dangerous", _OS),
    Case("seven_zip.7z", "archive", seven_zip, "pickle.global.dangerous", _OS),
    Case("bz2_pickle.bin", "archive", bz2_pickle, "pickle.global.dangerous",
         {"global": "builtins.exec"}),
    Case("gzip_pickle.gz", "archive", gzip_pickle, "pickle.global.dangerous", _OS),
    Case("pickle_zip_polyglot.pkl", "archive", pickle_zip_polyglot, "scan.polyglot", {}),
    Case("npy_object_array.npy", "numpy", npy_object_array, "pickle.global.dangerous", _OS),
    Case("joblib_payload.joblib", "joblib", joblib_payload, "pickle.global.dangerous", _OS),
    Case("joblib_object_array.joblib", "joblib", joblib_object_array,
         "pickle.global.dangerous", _OS),
    Case("joblib_compressed.joblib", "joblib", joblib_compressed, "pickle.global.dangerous",
         _OS),
    Case("modelscan_85_build_setattr.pkl", "pickle", modelscan_85_build_setattr,
         "pickle.build.global", {"target": "numpy.prod"}),
    Case("modelscan_330_numpy_builtins.pkl", "pickle", modelscan_330_numpy_builtins,
         "pickle.global.dangerous", {"global": "numpy.__builtins__"}),
    Case("picklescan_14_memo_mix.pkl", "pickle", picklescan_14_memo_mix,
         "pickle.global.dangerous", {"global": "os.system"}),
)


def write_corpus(directory: Path, canary: Path, *, benign: bool = True,
                 malicious: bool = True) -> list[Written]:
    """Write the chosen cases into ``directory`` (created) and return what was written."""
    return write_cases(directory, canary,
                       (BENIGN if benign else ()) + (MALICIOUS if malicious else ()))


def write_cases(directory: Path, canary: Path, cases: tuple[Case, ...]) -> list[Written]:
    """Build each case into ``directory`` (created); shared by every corpus module."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for case in cases:
        path = directory / case.name
        case.build(path, canary)
        written.append(Written(case, path))
    return written
