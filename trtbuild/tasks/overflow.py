"""The fp16/bf16 overflow scan of validate: where, in the cell's graph, a tensor turns Inf/NaN.

The output comparison alone misses these on a CPU: ONNX Runtime computes chains of fp16 ops it has
no fp16 kernel for in fp32 and drops the Cast pairs between them, so an intermediate that a GPU
would overflow never does here. Exposing every tensor as a graph output makes ONNX Runtime keep each
one in its own type. The same run also yields the declared outputs, so one session serves the
comparison and the scan (`ExposedRun`): the scan then adds the copies of the activations and a
finiteness check of each, not a second pass through the graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError
from trtbuild.spec.model import AUTOCAST_PRECISIONS
from trtbuild.tasks.base import JsonDict
from trtbuild.tasks.onnx_tensors import Runner
from trtbuild.tasks.onnx_tensors import load as load_onnx
from trtbuild.tasks.overflow_parts import PART_BYTES, run_in_parts, slices, tensor_sizes


class ExposedRun:
    """The cell's graph with every tensor exposed: per sample, the declared outputs, and the
    tensors where an overflow starts (gathered over the samples marked `scanned`)."""

    def __init__(self, graph: Path, precision: str, names: list[str], part_bytes: int = PART_BYTES) -> None:
        self.model, self.precision = load_onnx(graph), precision
        self.runner = Runner(self.model, "cell", precision, arena=False)
        missing = [name for name in names if name not in self.runner.names]
        if missing:  # ONNX Runtime's own run says so, with the graph's outputs
            raise TaskError(f"the ONNX graph has no outputs named {missing}")
        self.names = names
        self.held = {i.name for i in self.model.graph.initializer if not finite(_initializer(i))}
        self.overflowed: dict[str, None] = {}  # ordered set, in graph order of first overflow
        self.part_bytes = part_bytes
        self.sizes = tensor_sizes(self.model, names)

    def run(self, feeds: Mapping[str, Any], scanned: bool) -> list[Any]:
        """The declared outputs on `feeds`; scans them for overflows if `scanned`. One sample at a
        time: memory is one sample's activations, or one slice's of them when they would exceed
        `part_bytes` (overflow_parts.py: the same outputs and findings)."""
        sizes = self.sizes.per_node(self.model, feeds) if self.sizes is not None else []
        if sum(sizes) > self.part_bytes:
            return self._run_in_parts(feeds, scanned, slices(sizes, self.part_bytes))
        tensors = dict(self.runner.run(feeds))
        if scanned:
            self.overflowed.update(dict.fromkeys(overflow_starts(self.model, tensors, self.held)))
        return [tensors[name] for name in self.names]

    def _run_in_parts(
        self, feeds: Mapping[str, Any], scanned: bool, bounds: list[tuple[int, int]]
    ) -> list[Any]:
        """`run`, slice by slice: a tensor is broken once its slice has run, and every node reads
        tensors of its own or earlier slices, so each node is judged as in one whole run."""
        broken, outputs = set(self.held), dict[str, Any]()
        nodes = self.model.graph.node
        for start, end, tensors in run_in_parts(self.model, self.precision, feeds, bounds):
            if scanned:
                broken |= {name for name, value in tensors.items() if not finite(value)}
                starts = starts_in(nodes[start:end], tensors, broken)
                self.overflowed.update(dict.fromkeys(starts))
            outputs.update((name, tensors[name]) for name in self.names if name in tensors)
            del tensors
        return [outputs[name] for name in self.names]

    def result(self) -> JsonDict:
        overflowed = list(self.overflowed)
        return {"status": "checked", "count": len(overflowed), "overflowed": overflowed[:10]}


def scanned(precision: str) -> bool:
    """fp16 / bf16 cells are scanned; the others' tensors are in their own precision anyway."""
    return precision in AUTOCAST_PRECISIONS


def overflow_starts(model: Any, tensors: Mapping[str, Any], held: set[str]) -> list[str]:
    """The fp16/bf16 tensors, in graph order, that a node makes Inf/NaN from finite inputs. An
    infinity the graph holds on purpose (a Constant or an initializer `held`: masked_fill(-inf)
    before a softmax) and what is computed from it are no overflow."""
    broken = held | {name for name, value in tensors.items() if not finite(value)}
    return starts_in(model.graph.node, tensors, broken)


def starts_in(nodes: Iterable[Any], tensors: Mapping[str, Any], broken: set[str]) -> list[str]:
    """`overflow_starts` among `nodes`, given every `broken` tensor they read or make."""
    import numpy as np

    bfloat16 = ml_dtype("bfloat16")
    starts = []
    for node in nodes:
        if node.op_type == "Constant" or any(name in broken for name in node.input):
            continue
        if _saturated_fill(node, tensors):
            continue  # what is computed from it has a broken input, and is skipped too
        for name in node.output:
            value = tensors.get(name)
            low = value is not None and (
                value.dtype == np.float16 or (bfloat16 is not None and value.dtype == bfloat16)
            )
            if low and name in broken:
                starts.append(name)
    return starts


# float32's own extremes (finfo(float32).min, -3.4e38) are fill values, not magnitudes: a mask built
# with them (Hugging Face's causal and padding masks) means "minus infinity", which fp16 says as -inf.
FILL_MAGNITUDE = 1e38


def _saturated_fill(node: Any, tensors: Mapping[str, Any]) -> bool:
    """A Cast whose every Inf comes from a float32 fill value (|x| >= 1e38), not from a number
    past fp16's range: the softmax after it computes the same as with the fp32 fill."""
    import numpy as np

    if node.op_type != "Cast" or not node.input or not node.output:
        return False
    source, result = tensors.get(node.input[0]), tensors.get(node.output[0])
    if source is None or result is None or np.shape(source) != np.shape(result):
        return False
    infinite = ~np.isfinite(np.asarray(result, dtype=np.float32))
    magnitudes = np.abs(np.asarray(source, dtype=np.float64))[infinite]
    return bool(infinite.any()) and bool((magnitudes >= FILL_MAGNITUDE).all())


def finite(value: Any) -> bool:
    """No Inf/NaN in a float array (bfloat16 included); other arrays always are."""
    import numpy as np

    if value.dtype.kind == "f":  # numpy's own floats: no float32 copy of every activation
        return bool(np.isfinite(value).all())
    bfloat16 = ml_dtype("bfloat16")
    return bfloat16 is None or value.dtype != bfloat16 or bool(np.isfinite(value.astype(np.float32)).all())


def _initializer(tensor: Any) -> Any:
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor)


def ml_dtype(name: str) -> Any:
    try:
        import ml_dtypes

        return getattr(ml_dtypes, name)
    except ImportError:
        return None
