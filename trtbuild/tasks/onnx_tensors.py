"""Every intermediate tensor of an ONNX graph, by name, from ONNX Runtime's CPU provider."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError
from trtbuild.tasks.float_environment import worker_threads
from trtbuild.tasks.onnxruntime_errors import feeds_description, onnxruntime_failure

# ORT's type strings for the inputs we may have to feed in another dtype (keep_io_types: false).
# ONNX Runtime's own choice (0), from the CPUs the process may use, unless the executor gave this
# worker a share of them (-j N): the validate task records it in its float environment
# (float_environment.py), since the thread count moves the last bits.
INTRA_OP_THREADS = worker_threads()
_FEED_TYPES = {"tensor(float16)": "float16", "tensor(float)": "float32", "tensor(double)": "float64"}


def load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def expose_all(model: Any) -> Any:
    """A copy of `model` whose every node output is also a graph output, so one run yields them all."""
    import onnx

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    graph = exposed.graph
    present = {output.name for output in graph.output}
    for node in graph.node:
        for name in node.output:
            if name and name not in present:
                # Name only: ORT infers the type, and shape inference may not know every tensor's.
                graph.output.append(onnx.ValueInfoProto(name=name))
                present.add(name)
    return exposed


def cpu_session(model: bytes | str, arena: bool = True) -> Any:
    """An ONNX Runtime CPU session on `model` (serialized bytes or a path), as every task runs one:
    its failures are raised, for the task to report once with the node, never logged by ORT as
    well; and the graph runs as written, with no fusions, so a failure names the graph's own node
    and ORT's optimizer does not remove the fp16 round trips (Cast pairs around ops it computes in
    fp32) that hide exactly the overflows a GPU engine would hit. Without `arena`, ONNX Runtime
    frees each tensor when done with it, rather than keep a pool grown in powers of two."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = INTRA_OP_THREADS
    options.enable_cpu_mem_arena = arena
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class Runner:
    """One ORT session over a graph with every tensor exposed (or only its own outputs: `expose`
    False; and `arena`: see cpu_session); `run` maps tensor name -> array."""

    def __init__(
        self, model: Any, what: str, precision: str, expose: bool = True, arena: bool = True
    ) -> None:
        try:
            graph = expose_all(model) if expose else model
            self.session = cpu_session(graph.SerializeToString(), arena)
        except Exception as error:
            message = str(error).strip()
            if "NOT_IMPLEMENTED" in message:
                hint = (
                    " ONNX Runtime's CPU provider has no bf16 kernels, so bf16 graphs cannot be "
                    "triaged on this machine; triage the fp16 cell instead: the same nodes usually "
                    "overflow or lose precision in both."
                    if precision == "bf16"
                    else ""
                )
                raise TaskError(
                    f"ONNX Runtime (CPU) cannot run the {what} graph: "
                    f"{message.split(':', 3)[-1].strip()[:300]}.{hint}"
                ) from error
            raise onnxruntime_failure(error, f"ONNX Runtime cannot load the {what} graph") from error
        self.what = what
        self.names = [output.name for output in self.session.get_outputs()]
        self.feed_types = {i.name: _FEED_TYPES.get(i.type) for i in self.session.get_inputs()}

    def run(self, feeds: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        import numpy as np

        cast = {
            name: np.asarray(value).astype(self.feed_types[name]) if self.feed_types.get(name) else value
            for name, value in feeds.items()
            if name in self.feed_types
        }
        try:
            values = self.session.run(self.names, cast)
        except Exception as error:  # ORT's exceptions carry the node; a traceback would hide it
            doing = f"ONNX Runtime could not run the {self.what} graph on {feeds_description(cast)}"
            raise onnxruntime_failure(error, doing) from error
        yield from zip(self.names, values, strict=True)
