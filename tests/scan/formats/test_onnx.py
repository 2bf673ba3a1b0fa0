"""ONNX models built with onnx.helper: external data, custom domains, nested graphs, limits."""

from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data, set_external_data
from tests.scan.corpus_formats import onnx_model
from tests.scan.formats.conftest import rules, scan_file

from bastion.findings import Severity
from bastion.scan.formats.onnx import OnnxScanner, _escapes

SCANNER = OnnxScanner()


def _saved(tmp_path: Path, model: onnx.ModelProto, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, path)
    return path


def test_benign_model_has_no_findings(tmp_path: Path) -> None:
    assert scan_file(SCANNER, _saved(tmp_path, onnx_model()))[0] == []


def test_external_data_inside_the_directory_is_info(tmp_path: Path) -> None:
    model = onnx_model()
    convert_model_to_external_data(model, location="weights.bin", size_threshold=0)
    path = tmp_path / "ext.onnx"
    onnx.save(model, path)
    (found,) = scan_file(SCANNER, path)[0]
    assert found.rule == "onnx.external-data" and found.severity is Severity.INFO
    assert found.evidence == {"locations": ["weights.bin"]}


@pytest.mark.parametrize("location", ["../../secret.key", "/etc/shadow", "a/../../b",
                                      "..\\..\\win.ini", "C:\\keys\\id", "\\\\host\\share\\x"])
def test_external_data_escaping_the_directory_is_high(tmp_path: Path, location: str) -> None:
    model = onnx_model()
    weight = model.graph.initializer[0]
    set_external_data(weight, location=location)
    weight.ClearField("raw_data")
    findings, _ = scan_file(SCANNER, _saved(tmp_path, model))
    (found,) = findings
    assert found.rule == "onnx.external-data.escape" and found.severity is Severity.HIGH
    assert found.evidence == {"location": location}


def test_escape_hidden_in_a_constant_inside_a_loop_body(tmp_path: Path) -> None:
    tensor = numpy_helper.from_array(np.ones(2, np.float32), "k")
    set_external_data(tensor, location="../k.bin")
    tensor.ClearField("raw_data")
    body = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=tensor)], "body", [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", ""], ["out"], body=body)], "g",
        [helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])])
    findings, _ = scan_file(SCANNER, _saved(tmp_path, helper.make_model(graph)))
    assert rules(findings) == {"onnx.external-data.escape"}


def test_custom_domain_in_a_subgraph(tmp_path: Path) -> None:
    (found,) = scan_file(SCANNER, _saved(tmp_path, onnx_model("com.attacker.ops")))[0]
    assert found.rule == "onnx.domain.unknown" and found.severity is Severity.MEDIUM
    assert found.evidence == {"domain": "com.attacker.ops", "ops": ["Shell"]}


def test_standard_and_onnxruntime_domains_are_known(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft"),
         helper.make_node("Normalizer", ["y"], ["z"], domain="ai.onnx.ml")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1),
        helper.make_opsetid("ai.onnx.ml", 3)])
    assert scan_file(SCANNER, _saved(tmp_path, model))[0] == []


def test_model_local_functions_are_not_custom_ops(tmp_path: Path) -> None:
    function = helper.make_function(
        "local.fns", "Double", ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])],
        [helper.make_opsetid("", 17)])
    graph = helper.make_graph(
        [helper.make_node("Double", ["x"], ["y"], domain="local.fns")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, functions=[function], opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("local.fns", 1)])
    assert scan_file(SCANNER, _saved(tmp_path, model))[0] == []


def test_truncated_model_is_malformed(tmp_path: Path) -> None:
    path = _saved(tmp_path, onnx_model())
    path.write_bytes(path.read_bytes()[:-7])
    found = scan_file(SCANNER, path)[0]
    assert "onnx.malformed" in rules(found)


def test_deeply_nested_graphs_hit_the_limit(tmp_path: Path) -> None:
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    leaf = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "leaf", [], [out])
    graph = leaf
    for depth in range(20):
        node = helper.make_node("If", ["c"], ["y"], then_branch=graph, else_branch=leaf)
        graph = helper.make_graph([node], f"g{depth + 1}", [], [out])
    model = helper.make_model(graph)
    findings, _ = scan_file(SCANNER, _saved(tmp_path, model))
    assert rules(findings) == {"onnx.limit"}


@pytest.mark.parametrize(("location", "escapes"), [
    ("w.bin", False), ("sub/w.bin", False), ("sub/../w.bin", False), ("./w.bin", False),
    ("../w.bin", True), ("sub/../../w.bin", True), ("/w.bin", True), ("~/w.bin", True),
    ("D:w.bin", True), ("a\x00b", True)])
def test_escape_rule(location: str, escapes: bool) -> None:
    assert _escapes(location) is escapes


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_mutated_models_never_raise(tmp_path: Path, data: st.DataObject) -> None:
    raw = bytearray(onnx_model("x.y").SerializeToString())
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "fuzz.onnx"
    path.write_bytes(bytes(raw[: data.draw(st.integers(1, len(raw)))]))
    for finding in scan_file(SCANNER, path)[0]:
        assert finding.rule.startswith("onnx.")
