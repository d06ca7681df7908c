"""graph_order: the same graph, given in any node, initializer or opset order, saves as the same bytes."""

from __future__ import annotations

import itertools
import random

import onnx
from onnx import TensorProto, helper

from trtbuild.tasks.graph_order import canonical_order, topological_order

# Kept in one topological order; the tests shuffle it into others.
NODES = [
    # Named so that the name order is not a topological order: `a_add` needs both casts.
    helper.make_node("Cast", ["image"], ["image_half"], name="z_image_cast", to=TensorProto.FLOAT16),
    helper.make_node("Cast", ["depth"], ["depth_half"], name="y_depth_cast", to=TensorProto.FLOAT16),
    helper.make_node("Add", ["image_half", "depth_half"], ["sum"], name="a_add"),
    helper.make_node("Cast", ["sum"], ["sum_float"], name="b_up", to=TensorProto.FLOAT),
    helper.make_node("Mul", ["sum_float", "scale"], ["out"], name="c_mul"),
]


def make_model(nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 4]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def initializers() -> list[onnx.TensorProto]:
    return [
        helper.make_tensor("scale", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0]),
        helper.make_tensor("unused", TensorProto.FLOAT, [1], [0.0]),
    ]


def canonical_bytes(model: onnx.ModelProto) -> bytes:
    canonical_order(model)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(deterministic=True)


def test_every_valid_order_of_the_same_graph_gives_the_same_bytes() -> None:
    orders = [
        [NODES[0], NODES[1], *NODES[2:]],
        [NODES[1], NODES[0], *NODES[2:]],  # ModelOpt's two orders of the input casts
    ]
    results = {canonical_bytes(make_model(order, initializers())) for order in orders}
    shuffled = initializers()[::-1]
    results.add(canonical_bytes(make_model(orders[0], shuffled)))
    assert len(results) == 1
    names = [node.name for node in onnx.load_from_string(results.pop()).graph.node]
    # Ready nodes come by name; a node comes after what it reads, whatever its name.
    assert names == ["y_depth_cast", "z_image_cast", "a_add", "b_up", "c_mul"]


def test_the_sort_respects_dependencies_from_any_starting_order() -> None:
    shuffles = [list(p) for p in itertools.permutations(NODES)]
    results = {tuple(node.name for node in topological_order(nodes)) for nodes in shuffles}
    assert results == {("y_depth_cast", "z_image_cast", "a_add", "b_up", "c_mul")}


def test_a_subgraphs_outer_reads_count_and_its_nodes_are_sorted_too() -> None:
    """An If whose branch reads `sum_float` from the outer graph must come after `b_up`, though
    nothing in its own inputs says so and its name sorts first."""

    def branch(order: list[int]) -> onnx.GraphProto:
        nodes = [
            helper.make_node("Neg", ["sum_float"], ["negated"], name="q_neg"),
            helper.make_node("Abs", ["negated"], ["branch_out"], name="p_abs"),
            helper.make_node("Relu", ["sum_float"], ["unused_relu"], name="r_relu"),
        ]
        outputs = [helper.make_tensor_value_info("branch_out", TensorProto.FLOAT, [1, 4])]
        return helper.make_graph([nodes[i] for i in order], "branch", [], outputs)

    def model(branch_order: list[int], seed: int) -> onnx.ModelProto:
        body = [*NODES[:4]]
        random.Random(seed).shuffle(body)
        condition = helper.make_tensor("condition", TensorProto.BOOL, [], [True])
        branch_if = helper.make_node(
            "If",
            ["condition"],
            ["chosen"],
            name="a_if",
            then_branch=branch(branch_order),
            else_branch=branch([0, 1, 2]),
        )
        mul = helper.make_node("Mul", ["chosen", "scale"], ["out"], name="c_mul")
        built = make_model([branch_if, mul, *body], [*initializers(), condition])
        return built

    results = {canonical_bytes(model(order, seed)) for order, seed in [([0, 1, 2], 1), ([2, 0, 1], 2)]}
    assert len(results) == 1
    graph = onnx.load_from_string(results.pop()).graph
    names = [node.name for node in graph.node]
    assert names.index("a_if") > names.index("b_up"), names
    then_branch = next(a.g for a in graph.node[names.index("a_if")].attribute if a.name == "then_branch")
    assert [node.name for node in then_branch.node] == ["q_neg", "p_abs", "r_relu"]


def test_opset_imports_and_metadata_are_sorted() -> None:
    built = make_model(list(NODES), initializers())
    built.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    helper.set_model_props(built, {"b": "2", "a": "1"})
    other = make_model(list(NODES), initializers())
    other.opset_import.insert(0, helper.make_opsetid("com.microsoft", 1))
    helper.set_model_props(other, {"a": "1", "b": "2"})
    assert canonical_bytes(built) == canonical_bytes(other)
