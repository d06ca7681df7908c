"""The overflow scan's run in parts, for a sample whose exposed tensors would not fit in memory.

Exposing every tensor keeps all of a sample's activations alive at once: ResNet-50 fp16 at batch
32 holds ~1.6 GB of them, plus ONNX Runtime's fp32 temporaries. Instead the graph's nodes are cut,
in graph order, into slices of at most `PART_BYTES` of exposed tensors, and each slice is one run
of the graph up to its last node, exposing only that slice's tensors (and the sources of its Casts,
which the fill check reads); ONNX Runtime frees the others as it goes.

Why a prefix and not the slice alone, fed the exposed tensors before it (one pass, no re-run): a
slice so fed computed other last bits than the whole graph from its first Conv on (ResNet-50 fp16,
ONNX Runtime 1.32; the whole graph's session evidently does not compute each node from the fp16
tensors it exposes), so its outputs would not be the ones compared before. A prefix computes every
exposed tensor bit for bit as the whole exposed graph does (ResNet-50's 124 tensors and logits;
tests/tasks/test_overflow_parts.py); its cost is re-running the earlier slices' nodes, kept small
by filling slices from the end (ResNet-50's bytes sit in its first, cheap layers).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any

from trtbuild.tasks.onnx_tensors import Runner

# Exposed tensors per run, estimated from the graph's inferred shapes at the sample's shape: ResNet-50
# fp16 at batch 32 (1.6 GB) runs in two parts. Its 4 samples' scan, idle, in a fresh process: one
# run each 14.3 CPU s and 3.6 GiB; 1 GiB parts 14.9 s and 2.6 GiB; 512 MiB parts 21.3 s and 1.6 GiB
# (every part reruns the graph up to its slice, so smaller parts cost quadratically more).
PART_BYTES = 1 << 30


def tensor_sizes(model: Any, names: list[str]) -> TensorSizes | None:
    """The graph's tensor sizes, or None where it cannot run in parts and each sample runs whole, as
    before: a declared output that is no node's (a graph input or initializer passed through has no
    slice), or a graph ONNX shape inference cannot take (past protobuf's 2 GB, say)."""
    made = {name for node in model.graph.node for name in node.output}
    if not all(name in made for name in names):
        return None
    try:
        return TensorSizes(model)
    except Exception:  # onnx's own errors; its inference is an estimate here, never a verdict
        return None


class TensorSizes:
    """Each node output's bytes at a sample's shape, from ONNX shape inference over the graph with
    its symbolic dims (`batch`) bound to the sample's. A dim or tensor inference cannot tell counts
    as large (the largest input dim, the largest input's bytes): too many slices cost a little
    time, too few cost the memory this is for."""

    def __init__(self, model: Any) -> None:
        import onnx
        from onnx import shape_inference

        inferred = shape_inference.infer_shapes(model).graph
        self.inputs = {i.name: _dims(i) for i in model.graph.input}
        self.known: dict[str, tuple[int, list[int | str | None]]] = {}
        for value in [*inferred.value_info, *inferred.output]:
            elem_type = value.type.tensor_type.elem_type
            if value.type.HasField("tensor_type") and elem_type:
                itemsize = onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
                self.known[value.name] = (itemsize, _dims(value))

    def per_node(self, model: Any, feeds: Mapping[str, Any]) -> list[int]:
        """The estimated bytes of each node's outputs, in graph order, on `feeds`."""
        symbols: dict[str, int] = {}
        for name, dims in self.inputs.items():
            if name in feeds:
                shape = feeds[name].shape
                symbols.update((d, int(n)) for d, n in zip(dims, shape, strict=False) if isinstance(d, str))
        largest_dim = max((int(d) for f in feeds.values() for d in f.shape), default=1)
        largest = max((int(f.nbytes) for f in feeds.values()), default=0)
        return [
            sum(self._bytes(name, symbols, largest_dim, largest) for name in node.output if name)
            for node in model.graph.node
        ]

    def _bytes(self, name: str, symbols: dict[str, int], largest_dim: int, largest: int) -> int:
        if name not in self.known:
            return largest
        itemsize, dims = self.known[name]
        count = 1
        for dim in dims:
            count *= dim if isinstance(dim, int) else symbols.get(dim or "", largest_dim)
        return itemsize * count


def _dims(value: Any) -> list[int | str | None]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def slices(sizes: list[int], budget: int) -> list[tuple[int, int]]:
    """Graph-order node ranges [start, end) of at most `budget` bytes each (a node larger than that
    is a slice of its own), filled from the graph's end: each slice re-runs the nodes of the slices
    before it, so the early ones are left the smallest, which re-runs the fewest nodes."""
    cuts: list[int] = []
    end, total = len(sizes), 0
    for index in range(len(sizes) - 1, -1, -1):
        if index < end - 1 and total + sizes[index] > budget:
            cuts.append(index + 1)
            end, total = index + 1, 0
        total += sizes[index]
    return list(itertools.pairwise([0, *reversed(cuts), len(sizes)]))


def run_in_parts(
    model: Any, precision: str, feeds: Mapping[str, Any], bounds: list[tuple[int, int]]
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Per slice, in graph order: its node range and its tensors (with its Casts' sources), from
    one run of the graph's nodes up to the slice's end. The caller drops each slice's tensors
    before asking for the next: they are this scan's memory."""
    for start, end in bounds:
        prefix = _prefix(model, start, end)
        tensors = dict(Runner(prefix, "cell", precision, expose=False, arena=False).run(feeds))
        yield start, end, tensors
        del tensors  # before the next prefix runs


def _prefix(model: Any, start: int, end: int) -> Any:
    """A copy of `model` (inputs, initializers, shape annotations, opsets: what ONNX Runtime sees
    of the whole graph) cut after nodes[end - 1], whose outputs are the tensors of nodes[start:end],
    the sources of its Casts and the declared outputs among them. Subgraph bodies (If, Loop) keep
    every outer name they read: nothing before `end` is removed."""
    import onnx

    prefix = onnx.ModelProto()
    prefix.CopyFrom(model)
    graph = prefix.graph
    del graph.node[end:]
    made = {name for node in graph.node for name in node.output}
    sliced = graph.node[start:end]
    wanted = [name for node in sliced for name in node.output if name]
    wanted += [node.input[0] for node in sliced if node.op_type == "Cast" and node.input[0] in made]
    declared = {output.name: output for output in model.graph.output}
    del graph.output[:]
    for name in dict.fromkeys(wanted):
        # Name only, as expose_all: ORT infers the type; declared outputs keep their declaration.
        graph.output.append(declared[name] if name in declared else onnx.ValueInfoProto(name=name))
    return prefix
