"""Pre-build lint: is every dim the spec declares dynamic still dynamic in the ONNX graph?

Exporters often bake a traced size in (`x.view(8, -1)`, a specialised torch.export dim): the graph
then builds, but the engine rejects every other batch size, or worse, computes garbage for it. Caught
here, after export and before any build, by input and dim.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trtbuild.spec.model import TensorSpec
from trtbuild.tasks.params import OutputParams


def baked_dims(model: Any, inputs: Sequence[TensorSpec], outputs: Sequence[OutputParams]) -> list[str]:
    """One message per declared dynamic dim that the graph `model` (an onnx.ModelProto) fixed.

    Inputs are read as the graph declares them; outputs as ONNX shape inference derives them, since
    the torchscript exporter labels an output dim with the dynamic name even when the graph computes
    a constant size for it.
    """
    import onnx

    problems: list[str] = []
    graph_inputs = {value.name: value for value in model.graph.input}
    for tensor in inputs:
        value = graph_inputs.get(tensor.name)
        if value is None:
            problems.append(
                f"input '{tensor.name}' is not an input of the exported graph (unused by the model?)"
            )
            continue
        for axis, dim in _symbolic(tensor):
            fixed = _fixed_size(value, axis)
            if fixed is not None:
                name = tensor.name
                problems.append(
                    f"input '{name}' axis {axis} ('{dim}') is fixed to {fixed} in the exported graph"
                )
    origin = {dim: (t.name, axis) for t in inputs for axis, dim in _symbolic(t)}
    try:
        inferred = onnx.shape_inference.infer_shapes(_without_output_shapes(model))
    except Exception:  # inference is best effort; the build reports real shape errors
        return problems
    graph_outputs = {value.name: value for value in inferred.graph.output}
    for output in outputs:
        value = graph_outputs.get(output.name)
        if value is None or not output.shape:
            continue
        for axis, dim in _symbolic(output):
            fixed = _fixed_size(value, axis)
            if fixed is not None and dim in origin:
                name, input_axis = origin[dim]
                problems.append(
                    f"input '{name}' axis {input_axis} ('{dim}') is baked into the graph: output "
                    f"'{output.name}' axis {axis} is always {fixed}"
                )
    return problems


def _symbolic(tensor: TensorSpec | OutputParams) -> list[tuple[int, str]]:
    return [(axis, dim) for axis, dim in enumerate(tensor.shape or ()) if isinstance(dim, str)]


def _fixed_size(value: Any, axis: int) -> int | None:
    dims = value.type.tensor_type.shape.dim
    if axis >= len(dims):
        return None
    dim = dims[axis]
    return int(dim.dim_value) if dim.HasField("dim_value") else None


def _without_output_shapes(model: Any) -> Any:
    """A copy whose outputs carry no declared shape, so inference shows what the graph computes."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for value in copy.graph.output:
        value.type.tensor_type.ClearField("shape")
    return copy


HINT = (
    "the model's forward uses a traced size as a constant (x.view(8, -1), a Python int from "
    "x.shape used in arithmetic): use -1 or x.shape[0] symbolically, or try the other exporter"
)
