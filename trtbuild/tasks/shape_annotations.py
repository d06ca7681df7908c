"""Intermediate shape annotations (`graph.value_info`), removed before a graph is handed on.

Tools that rewrite a graph also rewrite these annotations from their own shape inference, and not
always truly: after onnxsim and ModelOpt AutoCast, dims ONNX inference could not resolve are named
`unk` (one name for tensors of sizes 8 and 6, or for two axes of one tensor) or `unk__N`. ONNX
Runtime trusts the names (tensors whose dims share a name must be the same size, so it may plan
to reuse one's buffer for the other, and then fail in `session.run` with "Shape mismatch attempting
to re-use buffer"). Neither ONNX Runtime nor TensorRT needs them: both infer every shape from the
graph's inputs. The graph's own inputs and outputs keep theirs: they are the contract the spec
declared and the exporter wrote.
"""

from __future__ import annotations

from typing import Any


def drop_intermediate_shapes(model: Any) -> int:
    """Remove the annotations of every tensor that is not a graph input or output, in `model` (an
    onnx.ModelProto) and in its subgraphs (If, Loop, Scan bodies); returns how many were removed."""
    return _drop_from_graph(model.graph)


def _drop_from_graph(graph: Any) -> int:
    removed = len(graph.value_info)
    graph.ClearField("value_info")
    for node in graph.node:
        for attribute in node.attribute:
            subgraphs = [attribute.g] if attribute.HasField("g") else list(attribute.graphs)
            removed += sum(_drop_from_graph(subgraph) for subgraph in subgraphs)
    return removed
