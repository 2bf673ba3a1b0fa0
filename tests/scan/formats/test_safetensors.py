"""safetensors header validation on files written by the safetensors library, then tampered."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch
from tests.scan.corpus_formats import retouch_header, safetensors_benign
from tests.scan.formats.conftest import rules, scan_file

from bastion.findings import Severity
from bastion.scan.formats.safetensors import SafetensorsScanner

SCANNER = SafetensorsScanner()


def _benign(directory: Path, canary: Path) -> Path:
    path = directory / "model.safetensors"
    safetensors_benign(path, canary)
    return path


def test_benign_numpy_and_torch_files_have_no_findings(tmp_path: Path, canary: Path) -> None:
    findings, _ = scan_file(SCANNER, _benign(tmp_path, canary))
    assert findings == []
    path = tmp_path / "torch.safetensors"
    save_torch({"w": torch.zeros(3, 5, dtype=torch.bfloat16), "e": torch.zeros(0)}, str(path))
    assert scan_file(SCANNER, path)[0] == []


def test_empty_file_of_tensors_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    save_file({}, path)
    assert scan_file(SCANNER, path)[0] == []


def _tampered(tmp_path: Path, canary: Path, edit: Any, length: int | None = None) -> set[str]:
    path = _benign(tmp_path, canary)
    retouch_header(path, edit, length)
    return rules(scan_file(SCANNER, path)[0])


def _set(tensor: str, key: str, value: Any) -> Any:
    return lambda header: header[tensor].__setitem__(key, value)


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (_set("bias", "dtype", "PYOBJ"), "safetensors.dtype.unknown"),
        (_set("weight", "data_offsets", [10**9, 10**9 + 128]), "safetensors.tensor.bounds"),
        (_set("weight", "shape", [8, 5]), "safetensors.tensor.size"),
        (_set("weight", "shape", [8, True]), "safetensors.tensor.invalid"),
        (_set("weight", "data_offsets", [5, 1]), "safetensors.tensor.invalid"),
        (lambda h: h["weight"].pop("shape"), "safetensors.tensor.invalid"),
        (lambda h: h.__setitem__("__metadata__", {"a": 1}), "safetensors.metadata.invalid"),
    ],
)
def test_tampered_entries(tmp_path: Path, canary: Path, edit: Any, rule: str) -> None:
    assert rule in _tampered(tmp_path, canary, edit)


def test_overlapping_tensors(tmp_path: Path, canary: Path) -> None:
    def overlap(header: dict[str, Any]) -> None:
        begin = header["weight"]["data_offsets"][0]  # 128 bytes: room for 24
        header["steps"]["data_offsets"] = [begin, begin + 24]

    found = _tampered(tmp_path, canary, overlap)
    assert "safetensors.tensor.overlap" in found


def test_bytes_hidden_after_the_last_tensor(tmp_path: Path, canary: Path) -> None:
    path = _benign(tmp_path, canary)
    with path.open("ab") as out:
        out.write(b"PK\x03\x04 a second payload")
    findings, _ = scan_file(SCANNER, path)
    hidden = [f for f in findings if f.rule == "safetensors.data.hidden"]
    assert len(hidden) == 1 and hidden[0].evidence == {"length": 21}
    assert hidden[0].location is not None and hidden[0].location.offset == path.stat().st_size - 21


def test_gap_between_tensors(tmp_path: Path, canary: Path) -> None:
    def gap(header: dict[str, Any]) -> None:
        # Shift the first tensor's span by 8 bytes, leaving a hole at the start.
        first = min(header.values(), key=lambda e: e["data_offsets"][0] if "dtype" in e else 1e9)
        begin, end = first["data_offsets"]
        first["data_offsets"] = [begin + 8, end + 8]

    assert "safetensors.data.hidden" in _tampered(tmp_path, canary, gap)


@pytest.mark.parametrize("length", [0, 2**63, 10**6])
def test_header_length_out_of_bounds(tmp_path: Path, canary: Path, length: int) -> None:
    assert _tampered(tmp_path, canary, lambda h: None, length) == {"safetensors.header.length"}


def test_header_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", 8) + b"\xff{notjs}")
    assert rules(scan_file(SCANNER, path)[0]) == {"safetensors.header.json"}
    path.write_bytes(struct.pack("<Q", 2) + b"[]")
    assert rules(scan_file(SCANNER, path)[0]) == {"safetensors.header.json"}


def test_duplicate_keys_are_a_parser_differential(tmp_path: Path) -> None:
    entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    header = f'{{"a":{entry},"a":{entry}}}'.encode()
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00")
    findings, _ = scan_file(SCANNER, path)
    assert [f.rule for f in findings] == ["safetensors.header.json"]
    assert "repeats keys ['a']" in findings[0].detail


def test_all_findings_are_high_or_medium_and_name_principle_2_2(tmp_path: Path,
                                                                canary: Path) -> None:
    path = _benign(tmp_path, canary)
    retouch_header(path, _set("bias", "dtype", "PYOBJ"))
    (found,) = scan_file(SCANNER, path)[0]
    assert found.severity is Severity.HIGH and found.principle.number == "2.2"
    assert found.location is not None and found.location.path == str(path)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
), tail=st.binary(max_size=64))
def test_fuzz_headers_never_raise(tmp_path: Path, header: Any, tail: bytes) -> None:
    text = json.dumps(header).encode()
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + tail)
    for finding in scan_file(SCANNER, path)[0]:
        assert finding.rule.startswith("safetensors.")


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=256))
def test_fuzz_bytes_never_raise(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(data)
    scan_file(SCANNER, path)


def test_tensor_data_is_never_read(tmp_path: Path) -> None:
    """Only the 8-byte length and the header are read, whatever the data size."""
    path = tmp_path / "big.safetensors"
    save_file({"w": np.zeros((256, 1024), np.float32)}, path)  # 1 MiB of data
    reads: list[int] = []
    real_open = path.open

    class Counting:
        def __init__(self) -> None:
            self.f = real_open("rb")

        def read(self, n: int = -1) -> bytes:
            data = self.f.read(n)
            reads.append(len(data))
            return data

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

    from bastion.findings import Location
    from bastion.scan.interface import ScanLimits, Source

    source = Source(Location(str(path)), path.stat().st_size, Counting)  # type: ignore[arg-type]
    assert list(SCANNER.scan(source, ScanLimits())) == []
    assert sum(reads) < 200
