"""PyTorch's tar checkpoints (pre-1.0): records parsed as torch.load reads them.

torch 2 can no longer write this format, so the fixture is assembled from its reader's
specification and proven real by loading it with ``torch.load``.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import torch

from bastion.scan import scan


class _Ref:
    def __init__(self, key: int) -> None:
        self.key = key


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> str | None:
        return str(obj.key) if isinstance(obj, _Ref) else None


def _tar_checkpoint(path: Path, storage_header: bytes | None = None) -> None:
    values = struct.pack("<3f", 1.0, 2.0, 3.0)
    storages = (pickle.dumps(1, protocol=2)
                + (storage_header or pickle.dumps((7, "cpu", torch.FloatStorage), protocol=2))
                + struct.pack("<q", 3) + values + pickle.dumps([], protocol=2))
    tensors = (pickle.dumps(1, protocol=2) + pickle.dumps((9, 7, torch.FloatTensor), protocol=2)
               + struct.pack("<i", 1) + bytes(4) + struct.pack("<q", 3) + struct.pack("<q", 1)
               + struct.pack("<q", 0))
    main = io.BytesIO()
    _Pickler(main, protocol=2).dump({"weight": _Ref(9), "epoch": 3})
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("sys_info", pickle.dumps({"little_endian": True}, protocol=2)),
                           ("pickle", main.getvalue()), ("tensors", tensors),
                           ("storages", storages)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_real_tar_checkpoint_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    _tar_checkpoint(path)
    loaded = torch.load(path, weights_only=False)  # our own benign fixture: proves the format
    assert loaded["weight"].tolist() == [1.0, 2.0, 3.0]
    report = scan(path, workers=1)
    assert [(f.rule, f.location.member) for f in report.findings if f.severity.rank >= 2] == []
    members = {f.location.member for f in report.files}
    assert {"pickle", "sys_info"} <= members


class _Evil:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, ...]:
        return os.system, (f"touch {self.canary}",)


def test_payload_in_a_storage_record(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "old.pt"
    header = pickle.dumps((7, "cpu", torch.FloatStorage, _Evil(canary)), protocol=2)
    _tar_checkpoint(path, storage_header=header)
    report = scan(path, workers=1)
    rules = {(f.rule, f.location.member) for f in report.findings}
    assert ("pickle.global.dangerous", "storages") in rules
    assert ("torch.tar.malformed", "storages") in rules  # a 4-tuple is not a storage header
    assert not canary.exists()


def test_absurd_record_sizes_are_findings(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    _tar_checkpoint(path)
    data = path.read_bytes().replace(struct.pack("<q", 3) + struct.pack("<3f", 1.0, 2.0, 3.0),
                                     struct.pack("<q", 2**60) + struct.pack("<3f", 1.0, 2.0, 3.0))
    path.write_bytes(data)
    report = scan(path, workers=1)
    assert "torch.tar.malformed" in {f.rule for f in report.findings}
