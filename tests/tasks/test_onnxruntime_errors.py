"""ONNX Runtime's failures as messages naming the node, and stale shape annotations removed, on real
ONNX Runtime sessions over small graphs made with onnx.helper."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from trtbuild.errors import TaskError
from trtbuild.tasks.onnxruntime_errors import feeds_description, onnxruntime_failure
from trtbuild.tasks.shape_annotations import drop_intermediate_shapes


def stale_graph() -> Any:
    """x [batch, 6] -> Reshape (to a shape fed at run time) -> Neg -> Concat -> Concat: four tensors of
    widths 6, 6, 12 and 24 all annotated [batch, 'unk'], as AutoCast leaves them. ORT believes the
    annotation, plans to reuse the 6-wide buffer for the 24-wide tensor, and fails at run time."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["a"], name="reshape"),
        helper.make_node("Neg", ["a"], ["b"], name="neg"),
        helper.make_node("Concat", ["b", "b"], ["c"], name="concat", axis=1),
        helper.make_node("Concat", ["c", "c"], ["d"], name="concat_again", axis=1),
        helper.make_node("ReduceSum", ["d", "axes"], ["y"], name="sum", keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "stale",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
        value_info=[helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "unk"]) for n in "abcd"],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


FEEDS = {"x": np.ones((2, 6), np.float32), "shape": np.array([2, 6], np.int64)}


def session(model: Any) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def test_a_run_time_failure_names_the_node_and_the_stale_annotations() -> None:
    with pytest.raises(Exception, match="re-use buffer") as caught:
        session(stale_graph()).run(None, FEEDS)
    failure = onnxruntime_failure(
        caught.value, f"ONNX Runtime could not run the graph on {feeds_description(FEEDS)}"
    )
    assert isinstance(failure, TaskError)
    message = str(failure)
    assert message.startswith("ONNX Runtime could not run the graph on x: [2, 6], shape: [2] at node ")
    assert "at node 'concat_again' (Concat): Shape mismatch attempting to re-use buffer." in message
    assert "onnxruntime_src" not in message and "[ONNXRuntimeError]" not in message
    assert failure.details[0].startswith("hint: the graph's shape annotations (value_info) give one dim name")


def test_dropping_intermediate_annotations_lets_the_graph_run() -> None:
    model = stale_graph()
    assert drop_intermediate_shapes(model) == 4
    assert len(model.graph.value_info) == 0
    assert [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [
        "batch",
        1,
    ]
    (y,) = session(model).run(None, FEEDS)
    np.testing.assert_allclose(y, np.full((2, 1), -24.0))


def test_a_load_failure_names_the_node() -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Concat", ["x", "x"], ["y"], name="no_axis")  # Concat needs `axis`
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    with pytest.raises(Exception, match="axis") as caught:
        session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    message = str(onnxruntime_failure(caught.value, "ONNX Runtime cannot load the graph"))
    assert message.startswith("ONNX Runtime cannot load the graph at node 'no_axis' (Concat): "), message
