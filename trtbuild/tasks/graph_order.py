"""A canonical order for the parts of an ONNX model whose order carries no meaning.

A graph's meaning is fixed by tensor names: any topological order of its nodes is the same graph,
and so is any order of its initializers, shape annotations, opset imports and metadata. The tools
that rewrite graphs fill these lists in whatever order they meet things, sometimes a Python set's:
ModelOpt AutoCast inserts the graph inputs' casts from `list(set(cast_to_fp16) - initializers)`
(modelopt/onnx/autocast/precisionconverter.py), and a set of strings iterates in an order that
follows the interpreter's hash seed (PYTHONHASHSEED, random per process). A two-input model's fp16
and int8 graphs then came out as different bytes from one run to the next: a new blob for the cache
and the lock, and `trtbuild verify` called the graph, the engine and engine.json changed.

`canonical_order` puts those lists in an order that depends on the graph alone, so the bytes saved
are a function of what the graph computes and how its tensors are named. Nodes are sorted
topologically (Kahn's algorithm), ties broken by a key of each node: its name, op type and domain, then
its output names, which are unique in SSA form. Subgraphs (If, Loop, Scan bodies) are sorted the same
way. A graph's inputs and outputs keep their order: they are the model's interface.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Any

NodeKey = tuple[str, str, str, tuple[str, ...], tuple[str, ...]]


def canonical_order(model: Any) -> None:
    """Put `model` (an onnx.ModelProto) into canonical order, in place."""
    _order_graph(model.graph)
    _sort_in_place(model.opset_import, lambda opset: (opset.domain, opset.version))
    _sort_in_place(model.metadata_props, lambda prop: (prop.key, prop.value))


def topological_order(nodes: Sequence[Any]) -> list[Any]:
    """`nodes` (onnx.NodeProto) with every producer before its consumers; of the nodes ready at a
    step, the one with the least key comes first, so the result does not depend on the order given."""
    producers = {output: index for index, node in enumerate(nodes) for output in node.output if output}
    consumers: list[list[int]] = [[] for _ in nodes]
    waiting = [0] * len(nodes)  # producers of each node not yet placed
    for index, node in enumerate(nodes):
        for producer in {producers[name] for name in _consumed(node) if name in producers} - {index}:
            consumers[producer].append(index)
            waiting[index] += 1
    keys = [_node_key(node) for node in nodes]
    ready = [(keys[index], index) for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, index = heapq.heappop(ready)
        order.append(index)
        for consumer in consumers[index]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(ready, (keys[consumer], consumer))
    # A cycle (no valid graph has one) leaves nodes unplaced: keep them, in key order, for the
    # ONNX checker or the builder to report.
    placed = set(order)
    order += sorted((index for index in range(len(nodes)) if index not in placed), key=keys.__getitem__)
    return [nodes[index] for index in order]


def _order_graph(graph: Any) -> None:
    for node in graph.node:
        for subgraph in _subgraphs(node):
            _order_graph(subgraph)
    ordered = topological_order(list(graph.node))
    del graph.node[:]
    graph.node.extend(ordered)
    _sort_in_place(graph.initializer, lambda tensor: tensor.name)
    _sort_in_place(graph.sparse_initializer, lambda sparse: sparse.values.name)
    _sort_in_place(graph.value_info, lambda value: value.name)


def _sort_in_place(field: Any, key: Callable[[Any], Any]) -> None:
    ordered = sorted(field, key=key)
    del field[:]
    field.extend(ordered)


def _node_key(node: Any) -> NodeKey:
    # Output names are unique in a graph in SSA form, so no two nodes of a valid graph tie.
    return (node.name, node.op_type, node.domain, tuple(node.output), tuple(node.input))


def _consumed(node: Any) -> Iterator[str]:
    """The tensor names `node` reads: its inputs, and those its subgraphs read from the outer scope.
    A subgraph's own names cannot shadow an outer one, so every name a subgraph mentions counts."""
    yield from node.input
    for subgraph in _subgraphs(node):
        for inner in subgraph.node:
            yield from _consumed(inner)
        yield from (output.name for output in subgraph.output)


def _subgraphs(node: Any) -> Iterator[Any]:
    for attribute in node.attribute:
        if attribute.HasField("g"):
            yield attribute.g
        yield from attribute.graphs
