"""A label-set repair network as an ONNX graph, ``raw inputs -> scores``, computing the layer with the exact
operators (``Gather``, ``ReduceMin``, ``Max``) instead of its plain ReLU form:

    F       = the base network's graph (``deepsade.onnx_graph.build_onnx``)
    lowest  = ReduceMin(Gather(F, members, axis 1), axis 2)        per minimal set
    need    = Relu(level - lowest)
    c*      = ReduceMin(need, axis 1)
    c_k     = ReduceMin(Unsqueeze(need, 2) + off, axis 1)          off: 0 where set S holds label k, else +inf
    Y       = Max(F, level - (c_k - c*))

In floating point the plain ReLU form (``min(a, b) = a - relu(a - b)``) rounds at the scale of the larger
score, and with scores of size 1e6 the lift of ``level`` is lost; with these operators the cheapest set's
scores are exactly ``level`` or above, as in ``predict`` (``repair_layer``). ``Gather`` is not read by the
ReLU verifiers of the VNN-LIB export, and the rule (a count of predicted labels) is not linear, so no VNN-LIB
property is written either.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepsade.constructions.repair_layer import LabelSetRepairMLP
from deepsade.network import SkipMLP
from deepsade.onnx_graph import OUTPUT_NAME, build_onnx
from deepsade.verification import NetworkWeights

GRAPH = ("raw inputs -> input scaling -> hidden ReLU layers -> base scores on [hidden; skip features] -> label-set "
         "repair (Gather, ReduceMin, Max: the cheapest minimal label set lifted to the level, exactly)")
OPERATORS = ["MatMul", "Add", "Relu", "Gather", "ReduceMin", "Sub", "Unsqueeze", "Max"]
BASE_SCORES = "F"


def build_repair_onnx(model: LabelSetRepairMLP, input_min: np.ndarray, input_max: np.ndarray,
                      precision: str = "float32") -> Any:
    """The ONNX model of a label-set repair network (graph above); stored float32 values kept as they are."""
    import onnx
    from onnx import helper, numpy_helper

    base = SkipMLP(model.n_inputs, model.hidden_sizes, model.n_outputs, model.mapped_features.tolist())
    base.load_state_dict(model.state_dict())
    onnx_model = build_onnx(NetworkWeights.from_model(base), input_min, input_max, None, None, precision)
    graph = onnx_model.graph
    for node in graph.node:  # the base's output becomes an intermediate value
        if node.name == OUTPUT_NAME:
            node.name = BASE_SCORES
        for i, name in enumerate(node.output):
            if name == OUTPUT_NAME:
                node.output[i] = BASE_SCORES
    dtype = np.float32 if precision == "float32" else np.float64
    off = np.where(model.repair_contains.numpy(), 0.0, np.inf)
    initialisers = [
        numpy_helper.from_array(model.repair_members.numpy().astype(np.int64), "repair_members"),
        numpy_helper.from_array(np.array(model.level, dtype=dtype), "repair_level"),
        numpy_helper.from_array(off.astype(dtype), "repair_off"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "repair_axis2"),
    ]
    graph.initializer.extend(initialisers)

    def node(op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        graph.node.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    members = node("Gather", [BASE_SCORES, "repair_members"], "repair_member_scores", axis=1)
    lowest = node("ReduceMin", [members], "repair_lowest", axes=[2], keepdims=0)
    need = node("Relu", [node("Sub", ["repair_level", lowest], "repair_need_pre")], "repair_need")
    cheapest = node("ReduceMin", [need], "repair_cheapest", axes=[1], keepdims=1)
    spread = node("Add", [node("Unsqueeze", [need, "repair_axis2"], "repair_need_3d"), "repair_off"],
                  "repair_need_per_label")
    through = node("ReduceMin", [spread], "repair_through", axes=[1], keepdims=0)
    lift = node("Sub", ["repair_level", node("Sub", [through, cheapest], "repair_gap")], "repair_lift")
    node("Max", [BASE_SCORES, lift], OUTPUT_NAME)
    onnx.checker.check_model(onnx_model)
    return onnx_model
