"""simplify with the real onnxsim: simplifies, and passes a graph it cannot handle through, visibly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from trtbuild.tasks import simplify
from trtbuild.tasks.base import TaskContext


def foldable_graph(path: Path) -> Path:
    """y = x + (c1 * c2): onnxsim folds the constant product away."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c1 = numpy_helper.from_array(np.ones(4, dtype=np.float32), "c1")
    c2 = numpy_helper.from_array(np.full(4, 2.0, dtype=np.float32), "c2")
    nodes = [helper.make_node("Mul", ["c1", "c2"], ["c"]), helper.make_node("Add", ["x", "c"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[c1, c2],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def unsimplifiable_graph(path: Path) -> Path:
    """A node reading a tensor nothing produces: onnxsim's model check rejects the graph."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Add", ["x", "undefined"], ["y"], name="broken_add")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def context(tmp_path: Path, source: Path) -> TaskContext[simplify.SimplifyParams]:
    out = tmp_path / "out"
    out.mkdir()
    params = simplify.SimplifyParams(inputs=(), outputs=())
    return TaskContext(task_id="m/simplify", params=params, inputs={"model.onnx": source}, outdir=out)


def test_simplify_folds_constants(tmp_path: Path) -> None:
    import onnx

    ctx = context(tmp_path, foldable_graph(tmp_path / "in.onnx"))
    meta = simplify.KIND.run(ctx)
    assert meta == {"simplified": True, "nodes_before": 2, "nodes_after": 1, "shape_annotations_dropped": 0}
    assert [n.op_type for n in onnx.load(str(ctx.output("model.onnx"))).graph.node] == ["Add"]
    assert ctx.warnings == []


def test_simplify_failure_passes_the_graph_through_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = unsimplifiable_graph(tmp_path / "in.onnx")
    ctx = context(tmp_path, source)
    with caplog.at_level(logging.INFO):
        meta = simplify.KIND.run(ctx)
    assert meta["simplified"] is False
    assert meta["reason"]
    assert ctx.output("model.onnx").read_bytes() == source.read_bytes()
    assert ctx.warnings and "passed through unsimplified" in ctx.warnings[0]
    assert "passed through unsimplified" in caplog.text
