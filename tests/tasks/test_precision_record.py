"""precision.json's counts, on small hand-made ONNX graphs: what a node computes in, which tensors are
weights and in which type, and the reasons of the nodes kept in higher precision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtbuild.tasks.precision_record import record, share_failures


def model(nodes: list[Any], initializers: list[Any], output_type: int = TensorProto.FLOAT) -> Any:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", output_type, [2, 4])],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_qdq_graph_counts_quantized_nodes_and_weights_and_not_scales() -> None:
    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.int8), "z")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="qx"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dqx"),
        helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"], name="qw"),
        helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"], name="dqw"),
        helper.make_node("MatMul", ["xd", "wd"], ["m"], name="matmul"),
        helper.make_node("Relu", ["m"], ["y"], name="relu"),
    ]
    document = record(model(nodes, [weight, scale, zero]), "int8", "modelopt q/dq", None)
    assert document["nodes"] == {"float32": 1, "int8": 1}
    assert document["other_nodes"] == {"q/dq": 4}
    # The fp32 weight reaches its consumer quantized; the scale and zero point are not weights.
    assert document["weights"] == {"int8": {"parameters": 16, "bytes": 64}}
    assert document["share"] == {"nodes": 0.5, "weights": 1.0}
    assert "kept" not in document  # Q/DQ cells: ModelOpt decides by op type, nothing was "kept"


def test_autocast_graph_lists_kept_nodes_with_their_reason_and_setting(tmp_path: Path) -> None:
    low = numpy_helper.from_array(np.ones((4, 4), np.float16), "w16")
    high = numpy_helper.from_array(np.full((4,), 1.0e5, np.float32), "b32")
    nodes = [
        helper.make_node("Cast", ["x"], ["x16"], name="x_cast", to=TensorProto.FLOAT16),
        helper.make_node("MatMul", ["x16", "w16"], ["m16"], name="matmul"),
        helper.make_node("Cast", ["m16"], ["m"], name="m_cast", to=TensorProto.FLOAT),
        helper.make_node("Add", ["m", "b32"], ["a"], name="add"),
        helper.make_node("Celu", ["a"], ["y"], name="celu"),
    ]
    reasons = {"add": "initializer b32 out of range: min=100000.0, max=100000.0, range=[-65504.0,65504.0]"}
    graph = model(nodes, [low, high])
    document = record(onnx.shape_inference.infer_shapes(graph), "fp16", "modelopt autocast", reasons)
    assert document["nodes"] == {"float16": 1, "float32": 2}
    assert document["weights"] == {
        "float16": {"parameters": 16, "bytes": 32},
        "float32": {"parameters": 4, "bytes": 16},
    }
    assert document["share"] == {"nodes": 0.3333, "weights": 0.8}
    assert [(k["node"], k["dtype"], k["setting"]) for k in document["kept"]] == [
        ("add", "float32", "autocast.init_max"),
        ("celu", "float32", None),
    ]
    assert document["kept"][1]["reason"] == "no rule fired: AutoCast does not convert Celu to fp16"

    path = tmp_path / "precision.json"
    path.write_text(json.dumps(document))
    failures = share_failures(path, 0.5)
    assert [(f["metric"], f["value"]) for f in failures] == [("fp16 share of nodes", 0.3333)]
    assert share_failures(path, None) == []
