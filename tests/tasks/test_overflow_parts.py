"""The overflow scan in parts (overflow_parts.py): for a sample past the byte budget, the same
declared outputs, bit for bit, and the same findings in the same order as one exposed run."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trtbuild.tasks.onnx_tensors import load
from trtbuild.tasks.overflow import ExposedRun
from trtbuild.tasks.overflow_parts import TensorSizes, slices

NO_PARTS = 2**62  # a budget no sample reaches: one exposed run, as before the parts


def _half(name: str, values: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(values.astype(np.float16), name)


def conv_model(path: Path) -> Path:
    """An fp16 graph as AutoCast leaves it: Casts at the fp32 I/O, Convs and Relus ONNX Runtime
    computes in fp32 (where slices fed fp16 tensors would compute other bits), a Mul that overflows
    fp16 on large inputs, and a Cast of float32's fill value (-3.4e38: no overflow)."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
        helper.make_node("Conv", ["x16", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c2", "big"], ["m"]),
        helper.make_node("Relu", ["m"], ["r2"]),
        helper.make_node("Constant", [], ["fill"], value=numpy_helper.from_array(np.float32([-3.4e38]))),
        helper.make_node("Cast", ["fill"], ["fill16"], to=TensorProto.FLOAT16),
        helper.make_node("Max", ["r2", "fill16"], ["masked"]),
        helper.make_node("Conv", ["r1", "w3", "b3"], ["c3"]),
        helper.make_node("Add", ["c3", "c1"], ["side"]),
        helper.make_node("Cast", ["masked"], ["y"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["side"], ["z"], to=TensorProto.FLOAT),
    ]
    initializers = [
        _half("w1", rng.normal(0, 0.5, (4, 3, 3, 3))),
        _half("b1", rng.normal(0, 0.1, 4)),
        _half("w2", rng.normal(0, 0.5, (4, 4, 3, 3))),
        _half("b2", rng.normal(0, 0.1, 4)),
        _half("big", np.array([3000.0])),
        _half("w3", rng.normal(0, 0.5, (4, 4, 1, 1))),
        _half("b3", rng.normal(0, 0.1, 4)),
    ]
    graph = helper.make_graph(
        nodes,
        "parts",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 4, 8, 8]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def samples() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    # The second sample's inputs are large enough that `m` overflows; the others stay finite.
    return [
        {"x": rng.normal(0, 1, (2, 3, 8, 8)).astype(np.float32)},
        {"x": rng.normal(0, 40, (5, 3, 8, 8)).astype(np.float32)},
        {"x": rng.normal(0, 1, (3, 3, 8, 8)).astype(np.float32)},
    ]


def scan(graph: Path, part_bytes: int) -> tuple[list[list[np.ndarray]], dict[str, object]]:
    exposed = ExposedRun(graph, "fp16", ["y", "z"], part_bytes=part_bytes)
    outputs = [exposed.run(feeds, scanned=True) for feeds in samples()]
    return outputs, exposed.result()


def test_parts_find_and_output_what_one_run_does(tmp_path: Path) -> None:
    graph = conv_model(tmp_path / "parts.onnx")
    whole, whole_scan = scan(graph, NO_PARTS)
    assert whole_scan["count"] == 1 and whole_scan["overflowed"] == ["m"]  # the test can fail
    for budget in (1, 2000):  # every node its own slice; a few slices of a few nodes
        model = load(graph)
        sizes = TensorSizes(model).per_node(model, samples()[1])
        assert len(slices(sizes, budget)) > 1  # the parts path is the one taken
        parts, parts_scan = scan(graph, budget)
        assert parts_scan == whole_scan
        for got, expected in zip(parts, whole, strict=True):
            assert [a.tobytes() for a in got] == [a.tobytes() for a in expected]


def test_slices_cover_the_graph_in_order_within_the_budget() -> None:
    sizes = [400, 100, 100, 300, 50, 50, 600, 10, 700, 5]
    assert slices(sizes, 10_000) == [(0, len(sizes))]
    bounds = slices(sizes, 600)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(sizes)
    assert all(end == start for (_, end), (start, _) in itertools.pairwise(bounds))  # contiguous
    # At most the budget, but for a node larger than it, alone; filled from the end.
    assert all(sum(sizes[s:e]) <= 600 or e - s == 1 for s, e in bounds)
    assert bounds == [(0, 1), (1, 6), (6, 7), (7, 8), (8, 9), (9, 10)]
    assert slices([5, 5, 5], 1) == [(0, 1), (1, 2), (2, 3)]


def test_sizes_bind_the_symbolic_batch_to_the_sample(tmp_path: Path) -> None:
    model = load(conv_model(tmp_path / "parts.onnx"))
    small, large = (
        TensorSizes(model).per_node(model, {"x": np.zeros((n, 3, 8, 8), np.float32)}) for n in (1, 4)
    )
    assert small[0] == 3 * 8 * 8 * 2  # x16: fp16
    assert large[1] == 4 * small[1] == 4 * 4 * 8 * 8 * 2  # c1, at batch 1 and 4
    assert large[6] == small[6] == 4  # the fill Constant: no batch


def branch_model(path: Path) -> Path:
    """An If whose branches read an outer-scope tensor (`h`) and initializer (`k`): a part must
    keep every name a subgraph body reads, not only the top-level nodes' inputs."""
    then_branch = helper.make_graph(
        [helper.make_node("Mul", ["h", "k"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT16, None)],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Neg", ["h"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT16, None)],
    )
    nodes = [
        helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("If", ["flag"], ["b"], then_branch=then_branch, else_branch=else_branch),
        helper.make_node("Add", ["b", "r"], ["s"]),
        helper.make_node("Cast", ["s"], ["y"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "branch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        initializer=[
            numpy_helper.from_array(np.array(True), "flag"),
            _half("k", np.array([4000.0])),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_parts_keep_what_a_subgraph_reads(tmp_path: Path) -> None:
    graph = branch_model(tmp_path / "branch.onnx")
    feeds = [{"x": np.full((3, 8), 20.0, np.float32)}]  # 20 x 4000 overflows fp16 inside the If
    runs = {}
    for budget in (NO_PARTS, 1):
        exposed = ExposedRun(graph, "fp16", ["y"], part_bytes=budget)
        runs[budget] = ([exposed.run(f, scanned=True)[0].tobytes() for f in feeds], exposed.result())
    assert runs[NO_PARTS][1]["overflowed"] == ["b"]
    assert runs[1] == runs[NO_PARTS]
