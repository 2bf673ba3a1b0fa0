"""SavedModel graphs built with TensorFlow's own protobuf classes (as shipped by tensorboard)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from tests.scan.corpus_formats import add_tf1_saver, saved_model_bytes, string_const
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
        "BiasAdd", "Const", "Identity", "MatMul", "MergeV2Checkpoints", "NoOp", "Pack",
        "Placeholder", "ReadVariableOp", "Relu", "RestoreV2", "SaveV2", "Select",
        "ShardedFilename", "StatefulPartitionedCall", "StaticRegexFullMatch", "StringJoin",
        "VarHandleOp", "AssignVariableOp"])


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


# -- checkpoint ops: trusted for what they do with their inputs, never for a name -----------------

_SAVE = "__inference__traced_save_99"
_RESTORE = "__inference__traced_restore_100"


def _function(meta: Any, name: str) -> Any:
    return next(f for f in meta.graph_def.library.function if f.signature.name == name)


def _in(nodes: Any, name: str) -> Any:
    return next(n for n in nodes if n.name == name)


def _file_nodes(findings: list[Any]) -> set[str]:
    return {f.evidence["node"] for f in findings if f.rule == "tf.op.file"}


def _fake_saver_writing_a_file(meta: Any) -> None:
    """A function named like TF's traced save whose SaveV2 writes where its constant says."""
    fn = meta.graph_def.library.function.add()
    fn.signature.name = "__inference__traced_save_7"
    string_const(fn.node_def, "path", "/home/victim/.bashrc")
    string_const(fn.node_def, "names", "x")
    fn.node_def.add(name="SaveV2", op="SaveV2", input=["path:output:0", "names:output:0"])


def _fake_saver_with_write_file(meta: Any) -> None:
    fn = meta.graph_def.library.function.add()
    fn.signature.name = "__inference__traced_save_7"
    fn.signature.input_arg.add(name="file_prefix", type=7)
    string_const(fn.node_def, "path", "/home/victim/.ssh/authorized_keys")
    fn.node_def.add(name="WriteFile", op="WriteFile", input=["path:output:0", "file_prefix"])


def _saver_called_with_a_constant(meta: Any) -> None:
    """TF's own save function, node for node, called once more with an attacker's prefix."""
    string_const(meta.graph_def.node, "target", "/home/victim/.config/autostart/x")
    call = meta.graph_def.node.add(name="StatefulPartitionedCall_3",
                                   op="StatefulPartitionedCall", input=["target"])
    call.attr["f"].func.name = _SAVE


def _restore_called_with_a_constant(meta: Any) -> None:
    string_const(meta.graph_def.node, "target", "/etc/shadow")
    meta.graph_def.node.add(name="call", op=_RESTORE, input=["target"])  # the function as op


def _suffix_climbs_out(meta: Any) -> None:
    const = _in(_function(meta, _SAVE).node_def, "Const_1")
    const.attr["value"].tensor.string_val[0] = b"/../../../../home/victim/.bashrc"


def _join_with_a_separator(meta: Any) -> None:
    _in(_function(meta, _SAVE).node_def, "StringJoin").attr["separator"].s = b"/../../x"


def _prefix_rewritten(meta: Any) -> None:
    """The prefix through an op TF's saver never uses: the path is the graph's to choose."""
    nodes = _function(meta, _RESTORE).node_def
    nodes.add(name="rewrite", op="RegexReplace", input=["file_prefix"]) \
        .attr["rewrite"].s = b"/etc/passwd"
    _in(nodes, "RestoreV2").input[0] = "rewrite:output:0"


def _saver_as_a_branch(meta: Any) -> None:
    """Also used as an If branch, where the caller's other inputs become its arguments."""
    node = meta.graph_def.node.add(name="maybe", op="If", input=["flag", "target"])
    node.attr["then_branch"].func.name = _SAVE


def _saver_bound_by_the_object_graph(meta: Any) -> None:
    """Listed as a concrete function whose every argument the loader binds from the object
    graph (as it does for a resource initializer): the model picks the prefix."""
    graph = meta.object_graph_def
    constant = len(graph.nodes)
    graph.nodes.add().constant.operation = "target"
    string_const(meta.graph_def.node, "target", "/home/victim/.bashrc")
    graph.concrete_functions[_SAVE].bound_inputs.extend([constant] * 4)


_BODY_CASES: list[tuple[Any, set[str]]] = [
    (_fake_saver_writing_a_file, {"__inference__traced_save_7/SaveV2"}),
    (_fake_saver_with_write_file, {"__inference__traced_save_7/WriteFile"}),
    (_saver_called_with_a_constant, {f"{_SAVE}/SaveV2", f"{_SAVE}/MergeV2Checkpoints"}),
    (_restore_called_with_a_constant, {f"{_RESTORE}/RestoreV2"}),
    (_suffix_climbs_out, {f"{_SAVE}/SaveV2", f"{_SAVE}/MergeV2Checkpoints"}),
    (_join_with_a_separator, {f"{_SAVE}/SaveV2", f"{_SAVE}/MergeV2Checkpoints"}),
    (_prefix_rewritten, {f"{_RESTORE}/RestoreV2"}),
    (_saver_as_a_branch, {f"{_SAVE}/SaveV2", f"{_SAVE}/MergeV2Checkpoints"}),
    (_saver_bound_by_the_object_graph, {f"{_SAVE}/SaveV2", f"{_SAVE}/MergeV2Checkpoints"}),
]


@pytest.mark.parametrize(("extra", "nodes"), _BODY_CASES,
                         ids=[extra.__name__.lstrip("_") for extra, _ in _BODY_CASES])
def test_a_function_named_like_the_saver_is_judged_by_its_body(
    tmp_path: Path, extra: Any, nodes: set[str],
) -> None:
    findings = _scan(tmp_path, extra)
    assert _file_nodes(findings) == nodes
    assert {f.severity for f in findings if f.rule == "tf.op.file"} == {Severity.HIGH}


def _renamed_saver(meta: Any) -> None:
    """TF's pattern under names TF never uses: the body, not the name, makes it standard."""
    for fn, name in [(_function(meta, _SAVE), "__inference_write_checkpoint_5"),
                     (_function(meta, _RESTORE), "__inference_read_checkpoint_6")]:
        fn.signature.name = name
    for call, name in [("StatefulPartitionedCall_1", "__inference_write_checkpoint_5"),
                       ("StatefulPartitionedCall_2", "__inference_read_checkpoint_6")]:
        _in(meta.graph_def.node, call).attr["f"].func.name = name


def _two_shard_saver(meta: Any) -> None:
    """Variables on two devices: TF adds a second ShardedFilename/SaveV2 and packs both."""
    nodes = _function(meta, _SAVE).node_def
    nodes.add(name="ShardedFilename_1", op="ShardedFilename", input=[
        "StringJoin:output:0", "ShardedFilename/shard:output:0", "num_shards:output:0"])
    nodes.add(name="SaveV2_1", op="SaveV2", input=[
        "ShardedFilename_1:filename:0", "SaveV2/tensor_names:output:0",
        "SaveV2/shape_and_slices:output:0", "savev2_const", "^SaveV2"])
    pack = _in(nodes, "MergeV2Checkpoints/checkpoint_prefixes")
    pack.input[:] = ["ShardedFilename:filename:0", "ShardedFilename_1:filename:0", "^SaveV2",
                     "^SaveV2_1"]


def _tf1_saver(meta: Any) -> None:
    meta.graph_def.node.add(name="w", op="VariableV2")
    add_tf1_saver(meta)


@pytest.mark.parametrize("extra", [None, _renamed_saver, _two_shard_saver, _tf1_saver],
                         ids=["tf2_saver", "renamed", "two_shards", "tf1_saver"])
def test_tensorflows_own_savers_are_standard(tmp_path: Path, extra: Any) -> None:
    assert rules(_scan(tmp_path, extra)) == set()


def test_tf1_save_scope_names_vouch_for_nothing(tmp_path: Path) -> None:
    def add(meta: Any) -> None:
        _tf1_saver(meta)
        string_const(meta.graph_def.node, "save/evil_path", "/home/victim/.profile")
        meta.graph_def.node.add(name="save/SaveV2_9", op="SaveV2", input=["save/evil_path"])

    assert _file_nodes(_scan(tmp_path, add)) == {"graph/save/SaveV2_9"}


def test_tf1_saver_with_an_absolute_default_prefix(tmp_path: Path) -> None:
    def add(meta: Any) -> None:
        meta.graph_def.node.add(name="w", op="VariableV2")
        add_tf1_saver(meta, default="/home/victim/.bashrc")

    assert _file_nodes(_scan(tmp_path, add)) == {
        "graph/save/SaveV2", "graph/save/MergeV2Checkpoints", "graph/save/RestoreV2"}


# -- vocabulary tables: standard only for a file the object graph binds to the model's assets --

_TABLE_INIT = "text_file_init/InitializeTableFromTextFileV2"


def _vocab_table(name: str = "__inference__initializer_133", *, bind: str = "asset",
                 constant_file: bool = False, called: bool = False) -> Any:
    """What tf.saved_model.save writes for a StaticHashTable(TextFileInitializer(asset)):
    an initializer function whose captures (its arguments) the object graph binds to the
    table's resource and to the vocabulary's SavedAsset."""

    def add(meta: Any) -> None:
        fn = meta.graph_def.library.function.add()
        fn.signature.name = name
        handle = "text_file_init_initializetablefromtextfilev2_table_handle"
        asset = "text_file_init_asset_filepath"
        fn.signature.input_arg.add(name=handle, type=20)
        fn.signature.input_arg.add(name=asset, type=7)
        filename = asset
        if constant_file:
            string_const(fn.node_def, "path", "/etc/passwd")
            filename = "path:output:0"
        init = fn.node_def.add(name=_TABLE_INIT, op="InitializeTableFromTextFileV2",
                               input=[handle, filename])
        init.attr["key_index"].i, init.attr["value_index"].i = -2, -1
        string_const(fn.node_def, "Const", "")
        fn.node_def.add(name="Identity", op="Identity", input=["Const:output:0", f"^{_TABLE_INIT}"])
        graph = meta.object_graph_def
        table, file = len(graph.nodes), len(graph.nodes) + 1
        graph.nodes.add().resource.device = "/job:localhost/replica:0/task:0/device:CPU:0"
        if bind == "asset":
            graph.nodes.add().asset.SetInParent()
            meta.asset_file_def.add(filename="vocab.txt").tensor_info.name = "Const_9:0"
        else:
            graph.nodes.add().constant.operation = "Const"
        graph.nodes.add().bare_concrete_function.concrete_function_name = name
        graph.concrete_functions[name].bound_inputs.extend([table, file])
        if called:
            string_const(meta.graph_def.node, "vocab", "/etc/passwd")
            call = meta.graph_def.node.add(name="init_call", op="StatefulPartitionedCall",
                                           input=["table", "vocab"])
            call.attr["f"].func.name = name

    return add


@pytest.mark.parametrize("extra", [_vocab_table(), _vocab_table("__inference_tables_8")],
                         ids=["tf_initializer", "renamed"])
def test_vocabulary_table_bound_to_an_asset_is_standard(tmp_path: Path, extra: Any) -> None:
    assert rules(_scan(tmp_path, extra)) == set()


@pytest.mark.parametrize("extra", [
    _vocab_table(constant_file=True), _vocab_table(bind="constant"), _vocab_table(called=True),
    _node("InitializeTableFromTextFileV2", "init", function="__inference__initializer_133"),
], ids=["constant_file", "bound_to_a_constant", "called_from_the_graph", "name_only"])
def test_vocabulary_table_reading_another_file(tmp_path: Path, extra: Any) -> None:
    assert rules(_scan(tmp_path, extra)) == {"tf.op.file"}


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
