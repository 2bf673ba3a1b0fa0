"""GGUF parsing and chat-template review on files written by gguf's GGUFWriter."""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from tests.scan.corpus_formats import (
    BENIGN_TEMPLATE,
    MALICIOUS_TEMPLATE,
    OBFUSCATED_TEMPLATE,
    write_gguf,
)
from tests.scan.formats.conftest import rules, scan_file

from bastion.findings import Severity
from bastion.scan.formats.gguf import GGUFScanner

SCANNER = GGUFScanner()


def _written(tmp_path: Path, template: str, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    write_gguf(path, template)
    return path


def test_benign_file_with_template_and_arrays(tmp_path: Path) -> None:
    findings, members = scan_file(SCANNER, _written(tmp_path, BENIGN_TEMPLATE))
    assert findings == [] and members == []


@pytest.mark.parametrize("template", [MALICIOUS_TEMPLATE, OBFUSCATED_TEMPLATE])
def test_template_reaching_globals_is_critical(tmp_path: Path, canary: Path,
                                               template: str) -> None:
    path = _written(tmp_path, template.replace("CANARY", str(canary)))
    findings, _ = scan_file(SCANNER, path)
    (found,) = findings
    assert found.rule == "gguf.template.internals" and found.severity is Severity.CRITICAL
    assert found.evidence["key"] == "tokenizer.chat_template"
    assert any("__globals__" in line for line in found.evidence["issues"])
    assert found.techniques == ("AML.T0010.003", "AML.T0011.000")
    assert not canary.exists()


def test_named_templates_are_reviewed_too(tmp_path: Path) -> None:
    path = tmp_path / "named.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_chat_template([{"name": "default", "template": BENIGN_TEMPLATE},
                              {"name": "tool_use", "template": "{{ x.__class__ }}"}])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (found,) = scan_file(SCANNER, path)[0]
    assert found.evidence["key"] == "tokenizer.chat_template.tool_use"


def test_nested_arrays_and_all_scalar_types_parse(tmp_path: Path) -> None:
    path = tmp_path / "types.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_uint8("t.u8", 1)
    writer.add_int16("t.i16", -2)
    writer.add_uint64("t.u64", 2**40)
    writer.add_float64("t.f64", 0.5)
    writer.add_bool("t.b", True)
    writer.add_array("t.nested", [[1, 2], [3]])
    writer.add_array("t.strings", ["a", "bc"])
    writer.add_chat_template("{{ x.__class__ }}")  # after everything else: proves the walk
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert rules(scan_file(SCANNER, path)[0]) == {"gguf.template.internals"}


def test_big_endian_file_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "be.gguf"
    writer = gguf.GGUFWriter(path, "llama", endianess=gguf.GGUFEndian.BIG)
    writer.add_chat_template("{{ cycler.__init__ }}")
    writer.add_tensor("w", np.zeros(4, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert rules(scan_file(SCANNER, path)[0]) == {"gguf.template.internals"}


def test_truncated_file_is_malformed(tmp_path: Path) -> None:
    path = _written(tmp_path, BENIGN_TEMPLATE)
    data = path.read_bytes()
    path.write_bytes(data[:200])
    (found,) = scan_file(SCANNER, path)[0]
    assert found.rule == "gguf.malformed" and found.severity is Severity.HIGH


@pytest.mark.parametrize(
    ("counts", "why"),
    [((2**60, 0), "cannot fit"), ((0, 2**62), "cannot fit")],
)
def test_absurd_counts_are_malformed(tmp_path: Path, counts: tuple[int, int], why: str) -> None:
    path = tmp_path / "counts.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, *counts) + b"\x00" * 64)
    (found,) = scan_file(SCANNER, path)[0]
    assert found.rule == "gguf.malformed" and why in found.detail


def test_absurd_string_length_is_malformed(tmp_path: Path) -> None:
    key = struct.pack("<Q", 2**63) + b"k"
    path = tmp_path / "s.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + key + b"\x00" * 32)
    (found,) = scan_file(SCANNER, path)[0]
    assert found.rule == "gguf.malformed"


def test_version_1_is_reported_not_parsed(tmp_path: Path) -> None:
    path = tmp_path / "v1.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    (found,) = scan_file(SCANNER, path)[0]
    assert found.rule == "gguf.version" and found.evidence == {"version": 1}


def test_tensor_offset_past_the_end(tmp_path: Path) -> None:
    path = _written(tmp_path, BENIGN_TEMPLATE)
    data = path.read_bytes()
    tensor_at = data.index(b"output_norm.weight") + len(b"output_norm.weight")
    offset_at = tensor_at + 4 + 8 + 4  # n_dims, one dim, ggml type
    patched = data[:offset_at] + struct.pack("<Q", 2**40) + data[offset_at + 8:]
    path.write_bytes(patched)
    found = scan_file(SCANNER, path)[0]
    assert [f.rule for f in found] == ["gguf.tensor.invalid"]
    assert "past the end" in found[0].detail


def test_duplicate_keys_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "dup.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.write_header_to_file()
    writer.close()
    entry = struct.pack("<Q", 3) + b"a.b" + struct.pack("<I", 4) + struct.pack("<I", 7)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + entry + entry)
    (found,) = scan_file(SCANNER, path)[0]
    assert found.rule == "gguf.metadata.duplicate" and found.evidence == {"key": "a.b"}


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_mutated_files_never_raise(tmp_path: Path, data: st.DataObject) -> None:
    base = tmp_path / "base.gguf"
    if not base.exists():
        write_gguf(base, BENIGN_TEMPLATE)
    raw = bytearray(base.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(raw)))
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(bytes(raw[:cut]))
    for finding in scan_file(SCANNER, path)[0]:
        assert finding.rule.startswith("gguf.")
