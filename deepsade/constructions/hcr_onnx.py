"""An HCR network as an ONNX graph, ``raw inputs -> raw outputs``, the same function ``predict`` computes:

    scaled = X @ diag(1 / (max - min)) + (-min / (max - min))        input scaling
    h      = Relu(... Relu(scaled @ W1^T + b1) ...)                    hidden layers
    f      = h @ Wh^T + (scaled @ S) @ Ws^T + b                        base output: directions d, radius logit s
    d, s   = f @ Sd, f @ Ss                                            constant 0/1 selections (no Gather)
    u      = d / Max(ReduceMax(Abs(d)), tiny)                          direction of unit max-norm
    rho    = Max(ReduceMax((u @ A^T) / slack), rho_min)                gauge of the region around c
    Y      = (c + (Sigmoid(s) / rho) * u) * (target max - min) + min  regression: target scaling after the layer

``Abs``, ``ReduceMax``, ``Div``, ``Sigmoid``, ``Mul`` and ``Max`` are standard ONNX operators (opset 13), so any
runtime computes it; but the graph is not piecewise linear, so the ReLU verifiers that take the DeepSaDe
export cannot prove a VNN-LIB property of it (``deepsade.export`` says so in ``export.json``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepsade.constructions.hcr import _TINY, HyperSphericalMLP
from deepsade.errors import UserInputError
from deepsade.onnx_graph import INPUT_NAME, IR_VERSION, OPSET, OUTPUT_NAME, PRECISIONS

NO_VNNLIB = ("not written: the HCR layer (Abs, ReduceMax, Div, Sigmoid) is not piecewise linear, so no VNN-LIB "
             "proof by the ReLU verifiers applies; the rule holds by construction (region proven exactly by z3, see "
             "certificate.json), which `deepsade verify` reports per assert")
GRAPH = ("raw inputs -> input scaling -> hidden ReLU layers -> base output on [hidden; skip features] -> HCR layer "
         "(direction of unit max-norm, gauge of the region, sigmoid radius fraction around the centre)")
OPERATORS = ["MatMul", "Add", "Relu", "Abs", "ReduceMax", "Max", "Div", "Sigmoid", "Mul"]


def build_hcr_onnx(model: HyperSphericalMLP, input_min: np.ndarray, input_max: np.ndarray,
                   output_min: np.ndarray | None = None, output_max: np.ndarray | None = None,
                   precision: str = "float32") -> Any:
    """The ONNX model of an HCR network (graph above); every stored float32 value is kept as it is."""
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

    def node(op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def arr(t: Any) -> np.ndarray:
        return t.detach().cpu().float().numpy().astype(np.float64)

    low, high = np.asarray(input_min, dtype=np.float64), np.asarray(input_max, dtype=np.float64)
    span = high - low
    scaled = node("Add", [node("MatMul", [INPUT_NAME, constant("scale", np.diag(1.0 / span))], "scaled_product"),
                          constant("shift", -low / span)], "scaled_inputs")
    h = scaled
    for i, layer in enumerate(model.hidden):
        pre = node("MatMul", [h, constant(f"hidden{i + 1}_matrix", arr(layer.weight).T)], f"hidden{i + 1}_product")
        h = node("Relu", [node("Add", [pre, constant(f"hidden{i + 1}_bias", arr(layer.bias))], f"hidden{i + 1}_pre")],
                 f"hidden{i + 1}")
    last_w, last_b = arr(model.last.weight), arr(model.last.bias)
    n_hidden, n_out = model.hidden_sizes[-1], model.n_outputs
    f = node("MatMul", [h, constant("base_from_hidden", last_w[:, :n_hidden].T)], "base_from_hidden_product")
    mapped = model.mapped_features.numpy().astype(np.int64)
    if len(mapped):
        selection = np.zeros((len(low), len(mapped)))
        selection[mapped, np.arange(len(mapped))] = 1.0
        skip = node("MatMul", [scaled, constant("skip_selection", selection)], "skip_features")
        from_skip = node("MatMul", [skip, constant("base_from_skip", last_w[:, n_hidden:].T)], "base_from_skip_product")
        f = node("Add", [f, from_skip], "base_sum")
    f = node("Add", [f, constant("base_bias", last_b)], "base_output")
    pick_d = np.vstack([np.eye(n_out), np.zeros((1, n_out))])
    pick_s = np.zeros((n_out + 1, 1))
    pick_s[-1, 0] = 1.0
    d = node("MatMul", [f, constant("pick_direction", pick_d)], "direction")
    s = node("MatMul", [f, constant("pick_logit", pick_s)], "radius_logit")
    norm = node("ReduceMax", [node("Abs", [d], "direction_abs")], "direction_norm_raw", axes=[1], keepdims=1)
    norm = node("Max", [norm, constant("tiny", np.array([_TINY]))], "direction_norm")
    u = node("Div", [d, norm], "unit_direction")
    a, b, c = model.stored()
    slack = (b.astype(np.float32) - c.astype(np.float32) @ a.astype(np.float32).T).astype(np.float64)
    ratio = node("Div", [node("MatMul", [u, constant("region_matrix_t", a.T)], "region_product"),
                         constant("region_slack", slack)], "gauge_terms")
    rho = node("ReduceMax", [ratio], "gauge_raw", axes=[1], keepdims=1)
    rho = node("Max", [rho, constant("rho_min", arr(model.rho_min))], "gauge")
    step = node("Div", [node("Sigmoid", [s], "radius_fraction"), rho], "step")
    y = node("Add", [node("Mul", [step, u], "offset"), constant("centre", c)],
             "scaled_outputs" if output_min is not None else OUTPUT_NAME)
    if output_min is not None:
        out_low = np.asarray(output_min, dtype=np.float64)
        out_span = np.asarray(output_max, dtype=np.float64) - out_low
        node("Add", [node("Mul", [y, constant("target_span", out_span)], "raw_product"),
                     constant("target_min", out_low)], OUTPUT_NAME)
    graph = helper.make_graph(
        nodes, "deepsade_hcr",
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["N", len(low)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, elem, ["N", n_out])],
        constants)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="deepsade")
    onnx_model.ir_version = IR_VERSION
    onnx.checker.check_model(onnx_model)
    return onnx_model
