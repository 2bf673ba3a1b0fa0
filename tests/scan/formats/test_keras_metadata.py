"""tf.keras ``keras_metadata.pb`` through the SavedModel scanner, and the probe that sniffs it.

The files are ``SavedMetadata`` messages serialized by the protobuf runtime from the message as
``tf_keras/protobuf/saved_metadata.proto`` declares it, holding the JSON tf.keras writes (see
``keras_metadata_nodes`` in ``tests/scan/corpus_formats.py`` for the source of its shape);
TensorFlow and tf_keras are not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from tests.scan.corpus_formats import (
    keras_metadata_bytes,
    keras_metadata_nodes,
    onnx_model,
    saved_model_bytes,
)
from tests.scan.formats.conftest import rules, scan_file

from bastion.findings import Severity
from bastion.scan import scan
from bastion.scan.formats import keras_metadata
from bastion.scan.formats._protobuf import is_keras_metadata, probe_protobuf
from bastion.scan.formats.savedmodel import SavedModelScanner
from bastion.scan.interface import Format
from bastion.scan.pickle.policy import Policy
from bastion.scan.sniff import sniff_bytes

SCANNER = SavedModelScanner()


def _scan(tmp_path: Path, nodes: list[tuple[str, str, Any]],
          scanner: SavedModelScanner = SCANNER) -> list[Any]:
    path = tmp_path / "keras_metadata.pb"
    path.write_bytes(keras_metadata_bytes(nodes))
    return scan_file(scanner, path)[0]


def test_benign_tf_keras_metadata_is_clean(tmp_path: Path) -> None:
    assert _scan(tmp_path, keras_metadata_nodes()) == []


def test_lambda_layer_bytecode_is_critical(tmp_path: Path, canary: Path) -> None:
    findings = _scan(tmp_path, keras_metadata_nodes(canary))
    lambdas = {(f.evidence["node_path"], f.evidence["where"]) for f in findings
               if f.rule == "keras.lambda.bytecode" and f.severity is Severity.CRITICAL}
    # The Lambda's own object, and the model's config and model_config that list it.
    assert lambdas == {("root.layer-0", "$.config"), ("root", "$.config.layers[1].config"),
                       ("root", "$.model_config.config.layers[1].config")}
    (own,) = [f for f in findings if f.rule == "keras.lambda.bytecode"
              and f.evidence["node_path"] == "root.layer-0"]
    assert own.evidence["identifier"] == "_tf_keras_layer" and own.location.offset
    # Its function's module (__main__) is code outside Keras as well.
    assert {f.evidence["global"] for f in findings if f.rule == "keras.module.external"} \
        == {"__main__"}
    assert not canary.exists()


def test_layer_from_an_outside_module(tmp_path: Path) -> None:
    nodes = keras_metadata_nodes()
    nodes.append(("root.layer-9", "_tf_keras_layer",
                  {"class_name": "Shell", "module": "os", "config": {"name": "x"}}))
    (found,) = _scan(tmp_path, nodes)
    assert (found.rule, found.evidence["node_path"]) == ("keras.module.external", "root.layer-9")
    assert found.severity >= Severity.HIGH


def test_allowlisted_custom_layer_passes_with_the_policy(tmp_path: Path) -> None:
    nodes = [*keras_metadata_nodes(), ("root.layer-9", "_tf_keras_layer",
                                       {"class_name": "MyLayer", "module": "mypkg.layers"})]
    assert rules(_scan(tmp_path, nodes)) == {"keras.module.external"}
    allowing = SCANNER.with_policy(Policy.default().allowing(["mypkg.layers.MyLayer"]))
    assert _scan(tmp_path, nodes, allowing) == []


def test_metadata_that_is_not_a_json_object(tmp_path: Path) -> None:
    nodes: list[tuple[str, str, Any]] = [*keras_metadata_nodes(),
                                         ("root.layer-9", "_tf_keras_layer", "[1, 2]")]
    (found,) = _scan(tmp_path, nodes)
    assert (found.rule, found.severity) == ("keras.config.invalid", Severity.HIGH)
    assert found.evidence["node_path"] == "root.layer-9"


def test_truncated_file_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "keras_metadata.pb"
    path.write_bytes(keras_metadata_bytes(keras_metadata_nodes())[:-7])
    (found,) = scan_file(SCANNER, path)[0]
    assert (found.rule, found.severity) == ("tf.malformed", Severity.HIGH)


def test_oversized_metadata_is_a_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keras_metadata, "MAX_METADATA", 100)
    (found,) = _scan(tmp_path, keras_metadata_nodes())
    assert (found.rule, found.severity) == ("tf.limit", Severity.HIGH)


def test_sniffed_by_structure_not_name(tmp_path: Path, canary: Path) -> None:
    data = keras_metadata_bytes(keras_metadata_nodes(canary))
    assert sniff_bytes(data) is Format.SAVEDMODEL
    (tmp_path / "weights.bin").write_bytes(data)
    report = scan(tmp_path)
    assert [f.format for f in report.files] == [Format.SAVEDMODEL]
    assert "keras.lambda.bytecode" in {f.rule for f in report.findings}
    assert not canary.exists()


@pytest.mark.parametrize("data", [
    # Field 1 messages that are not SavedObjects, or whose metadata is not JSON.
    keras_metadata_bytes([("root", "something_else", "not json")]),
    b"\x0a\x05hello",
    b"\nA line of text that starts with a newline\n",
    b'\n{"json": "after a newline"}\n',
    saved_model_bytes(),
    b"",
])
def test_probe_refuses_other_content(data: bytes) -> None:
    assert not is_keras_metadata(data)
    assert sniff_bytes(data) is not Format.SAVEDMODEL or data == saved_model_bytes()


def test_probe_keeps_onnx_and_savedmodel_apart() -> None:
    assert probe_protobuf(onnx_model().SerializeToString()) is Format.ONNX
    assert probe_protobuf(saved_model_bytes()) is Format.SAVEDMODEL
    assert is_keras_metadata(keras_metadata_bytes(keras_metadata_nodes()))


def test_probe_reads_a_head_that_ends_inside_the_metadata() -> None:
    big = {"class_name": "Sequential", "config": {"layers": ["x" * 100] * 2000}}
    data = keras_metadata_bytes([("root", "_tf_keras_sequential", big)])
    assert len(data) > 1 << 16 and is_keras_metadata(data[: 1 << 16])
    assert sniff_bytes(data) is Format.SAVEDMODEL


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_mutated_metadata_never_raises(tmp_path: Path, data: st.DataObject) -> None:
    raw = bytearray(keras_metadata_bytes(keras_metadata_nodes(tmp_path / "CANARY")))
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "keras_metadata.pb"
    path.write_bytes(bytes(raw[: data.draw(st.integers(1, len(raw)))]))
    is_keras_metadata(bytes(raw))
    for finding in scan_file(SCANNER, path)[0]:
        assert finding.rule.startswith(("tf.", "keras."))
    assert not (tmp_path / "CANARY").exists()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_probe_never_raises(blob: bytes) -> None:
    # Raw bytes, and the same bytes as the payload of a first node.
    for data in (blob, b"\x0a" + bytes([len(blob) & 0x7F]) + blob):
        assert is_keras_metadata(data) in (True, False)
        assert isinstance(sniff_bytes(data), Format)
