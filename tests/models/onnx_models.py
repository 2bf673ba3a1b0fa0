"""ONNX models built with onnx.helper in the test run: a linear classifier, with or without a
final Softmax, and shapes that a predictor cannot feed."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

W = np.array([[1.0, -1.0], [0.5, 0.25], [-2.0, 1.0], [0.0, 3.0]], dtype=np.float32)
B = np.array([0.1, -0.2], dtype=np.float32)


def linear(*, softmax: bool = False, output: str = "scores", batch: str | int = "n",
           inputs: int = 1, external: bool = False) -> bytes:
    """x (batch, 4) → x @ W + B (→ Softmax) named ``output``."""
    weight = numpy_helper.from_array(W, "W")
    if external:  # point the weights at a file beside the model
        weight.data_location = TensorProto.EXTERNAL
        weight.ClearField("raw_data")
        entry = weight.external_data.add()
        entry.key, entry.value = "location", "weights.bin"
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["logits" if softmax else output])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], [output], axis=1))
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])]
    graph_inputs += [helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, [batch, 4])
                     for i in range(inputs - 1)]
    graph = helper.make_graph(
        nodes, "linear", graph_inputs,
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, 2])],
        initializer=[weight, numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def reference_logits(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ W.astype(np.float64) + B


def typed(input_type: int, output_type: int) -> bytes:
    """x (n, 4) of ``input_type`` → Cast → (n, 4) of ``output_type``."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=output_type)], "cast",
        [helper.make_tensor_value_info("x", input_type, ["n", 4])],
        [helper.make_tensor_value_info("y", output_type, ["n", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
