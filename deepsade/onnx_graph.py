"""The network as an ONNX graph: ``raw inputs -> raw outputs`` with only ``MatMul``, ``Add`` and ``Relu``,
which every ONNX reader of the verification tools takes (Marabou 2.0 rejects ``Gather``). The graph is
described in ``deepsade.export``."""

from __future__ import annotations

from typing import Any

import numpy as np

from deepsade.errors import UserInputError
from deepsade.verification import NetworkWeights

INPUT_NAME = "X"
OUTPUT_NAME = "Y"
OPSET = 13  # MatMul / Add / Relu have been stable since opset 13; Marabou 2.0 and onnxruntime read it
IR_VERSION = 8  # the IR that goes with opset 13: older runtimes refuse newer IR versions
PRECISIONS = ("float32", "float64")


def build_onnx(weights: NetworkWeights, input_min: np.ndarray, input_max: np.ndarray,
               output_min: np.ndarray | None = None, output_max: np.ndarray | None = None,
               precision: str = "float32") -> Any:
    """The ONNX model ``raw inputs -> raw outputs`` (``deepsade.export``'s docstring shows the graph).

    ``output_min``/``output_max`` are the regression targets' scaling (None for classifier scores).
    The hidden layers' float32 weights are stored as they are; the scaling constants and the last
    layer with the target scaling folded in are computed in float64 and rounded once to ``precision``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if precision not in PRECISIONS:
        raise UserInputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = np.float32 if precision == "float32" else np.float64
    elem = TensorProto.FLOAT if precision == "float32" else TensorProto.DOUBLE
    nodes: list[Any] = []
    constants: list[Any] = []

    def constant(name: str, value: np.ndarray) -> str:
        constants.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], output: str) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output))
        return output

    def affine(source: str, matrix: np.ndarray, bias: np.ndarray | None, name: str, output: str | None = None) -> str:
        product = node("MatMul", [source, constant(f"{name}_matrix", matrix)], f"{name}_product" if bias is not None
                       else (output or name))
        if bias is None:
            return product
        return node("Add", [product, constant(f"{name}_bias", bias)], output or name)

    low, high = np.asarray(input_min, dtype=np.float64), np.asarray(input_max, dtype=np.float64)
    span = high - low
    scaled = affine(INPUT_NAME, np.diag(1.0 / span), -low / span, "scaled_inputs")
    hidden = scaled
    for i, (weight, bias) in enumerate(weights.hidden):
        hidden = node("Relu", [affine(hidden, weight.T, bias, f"hidden{i + 1}_pre")], f"hidden{i + 1}")
    n_hidden = weights.hidden[-1][1].shape[0]
    last_weight, last_bias = weights.last_weight, weights.last_bias
    if output_min is not None:
        # raw = min + span * (W z + b): folded into the last layer (computed in float64, rounded once to
        # ``precision``); as a separate MatMul + Add after it, Marabou 2.0 returned witnesses that broke that
        # very equation (measured: a wrong 'sat' for a certified model)
        out_low = np.asarray(output_min, dtype=np.float64)
        out_span = np.asarray(output_max, dtype=np.float64) - out_low
        last_weight, last_bias = out_span[:, None] * last_weight, out_span * last_bias + out_low
    last_hidden = last_weight[:, :n_hidden]
    if len(weights.mapped):
        selection = np.zeros((weights.n_inputs, len(weights.mapped)))
        selection[weights.mapped, np.arange(len(weights.mapped))] = 1.0
        skip = affine(scaled, selection, None, "skip_features")
        from_hidden = affine(hidden, last_hidden.T, None, "last_from_hidden")
        from_skip = affine(skip, last_weight[:, n_hidden:].T, None, "last_from_skip")
        summed = node("Add", [from_hidden, from_skip], "last_sum")
        node("Add", [summed, constant("last_bias", last_bias)], OUTPUT_NAME)
    else:
        affine(hidden, last_hidden.T, last_bias, "last", OUTPUT_NAME)
    graph = helper.make_graph(
        nodes, "deepsade",
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["N", weights.n_inputs])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["N", weights.n_outputs])],
        constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="deepsade")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
