"""SavedModel graphs built with TensorFlow's own protobuf classes (as shipped by tensorboard)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from tests.scan.corpus_formats import saved_model_bytes
from tests.scan.formats.conftest import rules, scan_file

from bastion.findings import Severity
from bastion.scan.formats.savedmodel import SavedModelScanner

SCANNER = SavedModelScanner()


def _scan(tmp_path: Path, extra: Any = None) -> list[Any]:
    path = tmp_path / "saved_model.pb"
    path.write_bytes(saved_model_bytes(extra))
    return scan_file(SCANNER, path)[0]


def test_benign_model_lists_its_ops_and_nothing_else(tmp_path: Path) -> None:
    (found,) = _scan(tmp_path)
    assert found.rule == "tf.ops" and found.severity is Severity.INFO
    assert found.evidence["ops"] == sorted([
        "BiasAdd", "Identity", "MatMul", "MergeV2Checkpoints", "NoOp", "Placeholder",
        "ReadVariableOp", "Relu", "RestoreV2", "SaveV2", "ShardedFilename",
        "StatefulPartitionedCall", "StringJoin", "VarHandleOp", "AssignVariableOp"])


def _node(op: str, name: str = "n", function: str = "") -> Any:
    def add(meta: Any) -> None:
        if function:
            fn = meta.graph_def.library.function.add()
            fn.signature.name = function
            fn.node_def.add(name=name, op=op)
        else:
            meta.graph_def.node.add(name=name, op=op)

    return add


@pytest.mark.parametrize(("op", "rule", "severity"), [
    ("PyFunc", "tf.op.python", Severity.CRITICAL),
    ("EagerPyFunc", "tf.op.python", Severity.CRITICAL),
    ("PyFuncStateless", "tf.op.python", Severity.CRITICAL),
    ("WriteFile", "tf.op.file", Severity.HIGH),
    ("ReadFile", "tf.op.file", Severity.HIGH),
    ("MatchingFiles", "tf.op.file", Severity.HIGH),
    ("CacheDatasetV2", "tf.op.file", Severity.HIGH),  # writes its cache to a filename: was low
    ("CacheDataset", "tf.op.file", Severity.HIGH),
    ("Addons>Shell", "tf.op.custom", Severity.MEDIUM),
])
def test_dangerous_ops(tmp_path: Path, op: str, rule: str, severity: Severity) -> None:
    found = [f for f in _scan(tmp_path, _node(op)) if f.rule == rule]
    assert len(found) == 1 and found[0].severity is severity
    assert op in found[0].evidence["ops"]


def test_checkpoint_ops_outside_the_save_functions(tmp_path: Path) -> None:
    findings = _scan(tmp_path, _node("SaveV2", "dump", function="__inference_call_3"))
    (found,) = [f for f in findings if f.rule == "tf.op.file"]
    assert found.evidence["node"] == "__inference_call_3/dump"


def test_checkpoint_ops_in_a_tf1_save_scope_are_standard(tmp_path: Path) -> None:
    assert rules(_scan(tmp_path, _node("RestoreV2", "save/RestoreV2"))) == set()


def test_vocabulary_table_in_tf_initializer_is_standard(tmp_path: Path) -> None:
    # What tf.saved_model.save writes for a StaticHashTable over an asset vocabulary.
    assert rules(_scan(tmp_path, _node("InitializeTableFromTextFileV2", "init",
                                       function="__inference__initializer_133"))) == set()
    elsewhere = _node("InitializeTableFromTextFileV2", "init", function="__inference_call_2")
    assert rules(_scan(tmp_path, elsewhere)) == {"tf.op.file"}


def test_print_to_a_file_stream(tmp_path: Path) -> None:
    def add(meta: Any) -> None:
        meta.graph_def.node.add(name="p", op="PrintV2").attr["output_stream"].s = \
            b"file:///tmp/leak.txt"

    (found,) = [f for f in _scan(tmp_path, add) if f.rule == "tf.op.file"]
    assert "file:///tmp/leak.txt" in found.detail


def test_print_to_stderr_is_fine(tmp_path: Path) -> None:
    def add(meta: Any) -> None:
        meta.graph_def.node.add(name="p", op="PrintV2").attr["output_stream"].s = b"stderr"

    assert rules(_scan(tmp_path, add)) == set()


def test_unlisted_ops_are_low(tmp_path: Path) -> None:
    (found,) = [f for f in _scan(tmp_path, _node("SomethingRare")) if f.rule == "tf.op.unlisted"]
    assert found.severity is Severity.LOW and found.evidence["unlisted"] == ["SomethingRare"]


def test_keras_metadata_in_the_object_graph_is_reviewed(tmp_path: Path) -> None:
    def add(meta: Any) -> None:
        node = meta.object_graph_def.nodes.add()
        node.user_object.metadata = json.dumps({"class_name": "Dense", "module": "evil.mod"})

    assert rules(_scan(tmp_path, add)) == {"keras.module.external"}


def test_truncated_file_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "saved_model.pb"
    path.write_bytes(saved_model_bytes()[:-5])
    assert rules(scan_file(SCANNER, path)[0]) == {"tf.malformed"}


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_mutated_models_never_raise(tmp_path: Path, data: st.DataObject) -> None:
    raw = bytearray(saved_model_bytes(_node("WriteFile")))
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path / "saved_model.pb"
    path.write_bytes(bytes(raw[: data.draw(st.integers(1, len(raw)))]))
    for finding in scan_file(SCANNER, path)[0]:
        assert finding.rule.startswith(("tf.", "keras."))
