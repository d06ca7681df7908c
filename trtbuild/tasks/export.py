"""export: PyTorch model -> ONNX with torch.onnx, dynamic axes from the spec's symbolic dims."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trtbuild import toolchain
from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import Cell, Spec, TensorSpec
from trtbuild.tasks.base import Derived, JsonDict, Planned, TaskContext, TaskKind
from trtbuild.tasks.lint import HINT, baked_dims
from trtbuild.tasks.params import (
    ModelParams,
    OutputParams,
    Shapes,
    dynamic_axes,
    model_params,
    output_params,
    user_code_context,
)
from trtbuild.tasks.sampling import example_shapes
from trtbuild.tasks.values import generated_arrays, npz_files

if TYPE_CHECKING:
    from trtbuild.tasks.traceable import Traceable

NAME = "export"
OUTPUT = "model.onnx"


@dataclass(frozen=True)
class ExportParams:
    model: ModelParams
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[OutputParams, ...]
    example_shapes: Shapes  # what the exporter traces with
    opset: int
    exporter: str  # torchscript | dynamo


class Export(TaskKind[ExportParams]):
    name = NAME
    # 6: inputs bound to forward's parameters by name; 7: example inputs made by each input's
    # `values` generator; 8: a dict-returning model's node names carry no wrapper prefix; 9: inputs
    # passed by keyword reach the torchscript exporter by position (forward(*args, **kwargs), **kw,
    # keyword-only parameters); 10: and so do the inputs of a forward with parameters beyond them,
    # whose defaults the exporter would append by position (transformers' BertModel refuses them);
    # 11: a graph ONNX's checker refuses fails here (the dynamo exporter converting down to opset 17
    # wrote opset-18 attributes), not at validate; 12: the installed distributions the model's local
    # code imports are keyed by version (params.ModelParams.imports)
    version = 12
    outputs = (OUTPUT,)

    def derive(self, spec: Spec, cell: Cell) -> Derived[ExportParams]:
        model, files = model_params(spec)
        params = ExportParams(
            model=model,
            inputs=spec.inputs,
            outputs=output_params(spec),
            example_shapes=example_shapes(spec.inputs, spec.profiles),
            opset=spec.export.opset,
            exporter=spec.export.exporter,
        )
        return Derived(params, {**files, **npz_files(spec)}, user_code_context(spec))

    def cost(self, params: ExportParams) -> float:
        return 7.0

    def tools(self, params: ExportParams) -> JsonDict:
        names = ("torch", "onnx", "onnxscript") if params.exporter == "dynamo" else ("torch", "onnx")
        return dict(toolchain.versions(names))

    def preflight(self, spec: Spec, tasks: Sequence[Planned[ExportParams]]) -> list[Problem]:
        from trtbuild.tasks.torch_model import model_source_problems

        return model_source_problems(spec)

    def run(self, ctx: TaskContext[ExportParams]) -> JsonDict:
        params = ctx.params
        notes = _export(ctx, _traceable_model(ctx))
        if not ctx.output(OUTPUT).exists():
            raise TaskError("torch.onnx.export finished without writing a model")
        import onnx

        _check_graph(str(ctx.output(OUTPUT)), params)
        graph = onnx.load(str(ctx.output(OUTPUT)), load_external_data=False)
        baked = baked_dims(graph, params.inputs, params.outputs)
        if baked:
            raise TaskError(
                "the exported graph lost dynamic dims the spec declares", [*baked, f"hint: {HINT}"]
            )
        return {"exporter": params.exporter, "opset": params.opset, "exporter_notes": notes}


def _check_graph(path: str, params: ExportParams) -> None:
    """Fail on a graph ONNX's checker refuses. The dynamo exporter writes opset 18 and converts down;
    at opset 17 it left Split's num_outputs and ReduceL2's noop_with_empty_axes (opset-18 attributes)
    in place. TensorRT-RTX built such a graph; ONNX Runtime refused it only at validate, with a hint
    that blamed simplify."""
    import onnx

    try:
        onnx.checker.check_model(path)  # a path: the checker reads graphs over 2 GB from disk
    except onnx.checker.ValidationError as error:
        headline = " ".join(str(error).split())
        if params.exporter == "dynamo" and params.opset < 18:
            hint = (
                f"hint: the dynamo exporter converts its opset-18 graph down to opset {params.opset} and "
                "left this node invalid: set export.opset: 18 (or higher), or export.exporter: torchscript"
            )
        else:
            hint = "hint: try the other exporter (export.exporter: torchscript | dynamo) or another opset"
        raise TaskError(
            f"the exported graph is not valid ONNX (opset {params.opset}): {headline}", [hint]
        ) from error


def _traceable_model(ctx: TaskContext[ExportParams]) -> Traceable:
    """The model returning the declared outputs in order, and its example inputs bound to `forward`'s
    parameters by name, in a form the exporter takes (see traceable.py)."""
    import torch

    from trtbuild.tasks.torch_model import input_binding, load_model
    from trtbuild.tasks.traceable import traceable_model

    params = ctx.params
    model = load_model(params.model, ctx.inputs, ctx.search_path)
    arrays = generated_arrays(params.inputs, params.example_shapes, 0, ctx.inputs)
    binding = input_binding(model, params.model.source, [t.name for t in params.inputs])
    if binding.note:
        ctx.warn(binding.note)
    return traceable_model(
        model,
        binding,
        {name: torch.from_numpy(array) for name, array in arrays.items()},
        [t.name for t in params.outputs],
        source=params.model.source,
        keywords=params.exporter == "dynamo",
    )


def _export(ctx: TaskContext[ExportParams], traced: Traceable) -> list[str]:
    """Run the exporter; returns its notes (warnings other than deprecations), at most ten."""
    import torch

    from trtbuild.tasks.output_capture import captured_output

    params = ctx.params
    dynamo = params.exporter == "dynamo"
    # The dynamo exporter's own graph optimisation is kept; simplify is a task of its own.
    options: dict[str, Any] = {"optimize": True, "verify": False, "external_data": False} if dynamo else {}
    # torch prints progress and deprecation notes: keep them out of the terminal, record them instead.
    captured = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, captured_output(captured):
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                traced.model,
                traced.args,
                str(ctx.output(OUTPUT)),
                output_names=[t.name for t in params.outputs],
                opset_version=params.opset,
                dynamo=dynamo,
                **options,
                **_input_options(traced, params, dynamo),
            )
        except Exception as error:
            raise _export_failed(error, params, captured.getvalue()) from error
    notes = {_first_line(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)}
    return sorted(notes)[:10]


def _input_options(traced: Traceable, params: ExportParams, dynamo: bool) -> dict[str, Any]:
    """How the exporter learns the inputs' names and dynamic dims. Inputs passed by keyword under the
    dynamo exporter are named by their keywords and take `dynamic_shapes` keyed the same way: its
    translation of `input_names` and `dynamic_axes` maps them onto forward's parameters by position,
    which is wrong as soon as the config leaves one out."""
    axes = dynamic_axes((*params.inputs, *params.outputs))
    if dynamo and traced.kwargs:
        shapes = {name: axes.get(name, {}) for name in traced.kwargs}
        return {"kwargs": traced.kwargs, "dynamic_shapes": shapes}
    # Under torchscript `traceable_model` passes every input by position (traced.kwargs is empty).
    return {"input_names": traced.input_names, "dynamic_axes": axes or None}


# Enough for torch.export's explanation and the user's line that raised it, not a graph dump.
MAX_DETAIL_LINES = 40
MAX_HEADLINE_LINES = 5


def _export_failed(error: Exception, params: ExportParams, printed: str) -> TaskError:
    """The exporter's failure as a message that names what went wrong. The dynamo exporter wraps
    torch.export's error in one that opens with "Next steps:" for torch developers; its cause says
    what in the model could not be exported, and where."""
    cause = error
    while isinstance(cause.__cause__, Exception):
        cause = cause.__cause__
    lines = [paragraph.splitlines() for paragraph in _paragraphs(str(cause))] or [[""]]
    # The first paragraph is the message, kept whole unless it is a dump (a graph, a long trace).
    if len(lines[0]) > MAX_HEADLINE_LINES:
        lines = [lines[0][:1], lines[0][1:], *lines[1:]]
    headline = " ".join(" ".join(lines[0]).split())
    details = [line for paragraph in lines[1:] for line in paragraph if line.strip()]
    if len(details) > MAX_DETAIL_LINES:
        details = [*details[:MAX_DETAIL_LINES], f"... ({len(details) - MAX_DETAIL_LINES} more lines)"]
    wrapped = [f"torch.onnx raised it as {type(error).__name__}"] if cause is not error else []
    return TaskError(
        f"torch.onnx.export ({params.exporter}, opset {params.opset}) failed: "
        f"{type(cause).__name__}: {headline}",
        [
            *details,
            *wrapped,
            "try the other exporter (export.exporter: torchscript | dynamo) or another opset",
            *printed.strip().splitlines()[-5:],
        ],
    )


def _paragraphs(text: str) -> list[str]:
    """`text` split at blank lines, empty ones dropped."""
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""


KIND = Export()
