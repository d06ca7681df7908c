"""probe: run the fp32 graph on ONNX Runtime at the edges of every profile, before anything is built.

Exporters bake traced sizes into a graph's inner nodes (a Reshape to `[-1, 16, 2, 4]` where 16 was
the traced sequence length) while its declared inputs and outputs stay symbolic, so the pre-build
lint passes and TensorRT fails at build time with "the builder returned no engine", or builds an
engine that rejects half the profile. Running the graph is the one check that sees every node. Each
dynamic dim is moved on its own to its min and its max (the others at opt), so a failure names the
dim that is baked in, the input it belongs to, the shapes and the node ORT stopped at.

One task per graph and profiles, shared by every cell built from that graph; the build takes its
result as an input, so no engine is built before the probe passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from trtbuild import toolchain
from trtbuild.errors import TaskError
from trtbuild.spec.model import Cell, ProfileSpec, Spec, TensorSpec
from trtbuild.tasks.base import Derived, JsonDict, TaskContext, TaskKind
from trtbuild.tasks.lint import HINT
from trtbuild.tasks.params import OutputParams, output_params
from trtbuild.tasks.sampling import ShapePoint, profile_points
from trtbuild.tasks.values import generated_arrays, npz_files

NAME = "probe"
GRAPH = "model.onnx"  # the fp32 graph, simplified when there is a simplify
OUTPUT = "probe.json"
SEED = 0  # the values are irrelevant to whether shapes fit; fixed, so probe.json is a function of the graph


@dataclass(frozen=True)
class ProbeParams:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[OutputParams, ...]
    profiles: tuple[ProfileSpec, ...]


class Probe(TaskKind[ProbeParams]):
    name = NAME
    version = 1
    outputs = (OUTPUT,)

    def derive(self, spec: Spec, cell: Cell) -> Derived[ProbeParams] | None:
        if not spec.probe:
            return None
        # An input whose values come from an .npz is read from it here too: its file is keyed.
        return Derived(ProbeParams(spec.inputs, output_params(spec), spec.profiles), npz_files(spec))

    def tools(self, params: ProbeParams) -> JsonDict:
        return dict(toolchain.versions(("onnxruntime", "numpy")))

    def run(self, ctx: TaskContext[ProbeParams]) -> JsonDict:
        params = ctx.params
        session = _session(ctx)
        if session is None:
            return {"probed": False}
        points = shape_points(params.inputs, params.profiles)
        records = [_probe(session, ctx, point, index) for index, point in enumerate(points)]
        failed = [record for record in records if record["status"] == "failed"]
        if failed:
            raise TaskError(
                f"the graph fails at {len(failed)} of the {len(records)} shape sets its profiles allow "
                "(each dynamic dim moved on its own to its min and max): no engine is built from it",
                [_failure_line(record, params.inputs) for record in failed]
                + [f"hint: {hint}" for hint in dict.fromkeys(record["hint"] for record in failed)],
            )
        document = {"status": "passed", "points": records}
        ctx.output(OUTPUT).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        return {"probed": True, "points": len(records)}


def shape_points(inputs: tuple[TensorSpec, ...], profiles: tuple[ProfileSpec, ...]) -> list[ShapePoint]:
    """Every profile's points; a spec without profiles has one, its declared static shapes."""
    if not profiles:
        static = {t.name: [int(d) for d in t.shape] for t in inputs}
        return [ShapePoint("static", None, "opt", {}, static)]
    return [point for profile in profiles for point in profile_points(inputs, profile)]


def _session(ctx: TaskContext[ProbeParams]) -> Any | None:
    """An ORT session on the graph, or None (said, and recorded) when ORT cannot run it here: a
    graph of ops only TensorRT implements must still build."""
    from trtbuild.tasks.onnx_tensors import cpu_session

    try:
        return cpu_session(str(ctx.inputs[GRAPH]))
    except Exception as error:  # ORT raises its own pybind exception types
        reason = f"ONNX Runtime (CPU) cannot load the graph: {_fault_text(error)}"
        ctx.warn(f"shape probe skipped: {reason}; dims baked into the graph will only show in the build")
        document = {"status": "skipped", "reason": reason, "points": []}
        ctx.output(OUTPUT).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        return None


def _probe(session: Any, ctx: TaskContext[ProbeParams], point: ShapePoint, index: int) -> JsonDict:
    """Run the graph at `point`; the record says which shapes, and what failed or came out."""
    from trtbuild.tasks.onnxruntime_errors import read_onnxruntime_error

    params = ctx.params
    graph_inputs = {i.name for i in session.get_inputs()}
    feeds = {
        name: array
        for name, array in generated_arrays(params.inputs, point.shapes, SEED + index, ctx.inputs).items()
        if name in graph_inputs  # an input the graph dropped is reported by export's lint
    }
    record: JsonDict = {
        "profile": point.profile,
        "dim": point.dim,
        "bound": point.bound,
        "sizes": point.sizes,
        "shapes": point.shapes,
    }
    names = [o.name for o in session.get_outputs()]
    try:
        arrays = dict(zip(names, session.run(names, feeds), strict=True))
    except Exception as error:  # ORT raises its own pybind exception types
        fault = read_onnxruntime_error(error)
        return {**record, "status": "failed", "error": _fault_text(error), "hint": fault.hint}
    record["outputs"] = {name: list(array.shape) for name, array in arrays.items()}
    wrong = _output_mismatches(params.outputs, arrays, point.sizes)
    if wrong:
        return {**record, "status": "failed", "error": "; ".join(wrong), "hint": HINT}
    return {**record, "status": "passed"}


def _fault_text(error: BaseException) -> str:
    from trtbuild.tasks.onnxruntime_errors import read_onnxruntime_error

    fault = read_onnxruntime_error(error)
    return f"{fault.where()} failed: {fault.reason}" if fault.node is not None else fault.reason


def _output_mismatches(
    outputs: tuple[OutputParams, ...], arrays: dict[str, Any], sizes: dict[str, int]
) -> list[str]:
    """Declared output dims the graph did not compute: an output dim named after an input's dim must
    follow it (a graph that runs but returns the traced size has baked it in)."""
    problems = []
    for output in outputs:
        array = arrays.get(output.name)
        if array is None or output.shape is None:
            continue
        if len(array.shape) != len(output.shape):
            problems.append(
                f"output '{output.name}' has rank {len(array.shape)}, declared {len(output.shape)}"
            )
            continue
        for axis, dim in enumerate(output.shape):
            expected = sizes.get(dim) if isinstance(dim, str) else dim
            if expected is not None and array.shape[axis] != expected:
                name = f"'{dim}' = {expected}" if isinstance(dim, str) else str(expected)
                problems.append(f"output '{output.name}' axis {axis} is {array.shape[axis]}, not {name}")
    return problems


def _failure_line(record: JsonDict, inputs: tuple[TensorSpec, ...]) -> str:
    dim = record["dim"]
    where = f"profile '{record['profile']}'"
    if dim is None:
        where += ", every dim at opt"
    else:
        axes = ", ".join(
            f"input '{t.name}' axis {axis}" for t in inputs for axis, d in t.dynamic_dims.items() if d == dim
        )
        where += f", dim '{dim}' ({axes}) at its {record['bound']} {record['sizes'][dim]}, others at opt"
    shapes = ", ".join(f"{name} {shape}" for name, shape in record["shapes"].items())
    return f"{where} [{shapes}]: {record['error']}"


KIND = Probe()
