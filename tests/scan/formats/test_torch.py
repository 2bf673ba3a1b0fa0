"""PyTorch legacy checkpoints: all five pickles are scanned; storage bytes are not."""

from __future__ import annotations

import io
import os
import pickle

import torch

from bastion.findings import Finding, Location
from bastion.scan import ScanLimits
from bastion.scan.formats.torch import TorchLegacyScanner
from bastion.scan.interface import Source


def run(data: bytes) -> list[Finding]:
    source = Source(Location("x.pt"), len(data), lambda: io.BytesIO(data))
    return [f for f in TorchLegacyScanner().scan(source, ScanLimits()) if isinstance(f, Finding)]


def legacy(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_storage_bytes_are_not_interpreted() -> None:
    # 1 MiB of storage bytes that look like opcodes must not produce findings
    t = torch.frombuffer(bytearray(b"cos\nsystem\n" * 100_000), dtype=torch.uint8)
    assert run(legacy({"t": t})) == []


def test_payload_in_the_storage_keys_pickle(tmp_path) -> None:
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'CANARY'}",)

    data = legacy({"w": torch.ones(2)})
    # the fifth pickle (storage keys) is replaced: scanners that stop after one pickle miss it
    stream = io.BytesIO(data)
    for _ in range(3):
        pickle.load(stream)
    _skip_main(stream)
    start = stream.tell()
    pickle.load(stream)
    end = stream.tell()
    evil = data[:start] + pickle.dumps(Evil(), protocol=2) + data[end:]
    rules = [f.rule for f in run(evil)]
    assert rules == ["pickle.global.dangerous"]
    assert "#5" in run(evil)[0].title


def _skip_main(stream: io.BytesIO) -> None:
    class P(pickle.Unpickler):
        def persistent_load(self, pid: object) -> None:
            return None

        def find_class(self, module: str, name: str) -> object:
            return lambda *a, **k: None

    P(stream).load()


def test_missing_pickles_are_truncation() -> None:
    data = legacy({"w": torch.ones(2)})
    cut = data[: data.index(b".", 40) + 1]  # only the first pickles survive
    assert "pickle.stream.truncated" in {f.rule for f in run(cut)}
