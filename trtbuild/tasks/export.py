"""export: PyTorch model -> ONNX with torch.onnx, dynamic axes from the spec's symbolic dims."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping
from typing import Any

from trtbuild.errors import TaskError
from trtbuild.plan import toolchain
from trtbuild.tasks.base import JsonDict, TaskContext, TaskKind
from trtbuild.tasks.lint import HINT, baked_dims
from trtbuild.tasks.sampling import random_arrays
from trtbuild.tasks.torch_model import load_model, with_declared_outputs

OUTPUT = "model.onnx"


def dynamic_axes(params: Mapping[str, Any]) -> dict[str, dict[int, str]]:
    """Input and output name -> {axis: symbolic dim name}, for the exporter."""
    axes: dict[str, dict[int, str]] = {}
    for tensor in [*params["inputs"], *params["outputs"]]:
        shape = tensor.get("shape") or []
        dims = {axis: dim for axis, dim in enumerate(shape) if isinstance(dim, str)}
        if dims:
            axes[tensor["name"]] = dims
    return axes


def tools(params: Mapping[str, Any]) -> JsonDict:
    names = ("torch", "onnx", "onnxscript") if params["exporter"] == "dynamo" else ("torch", "onnx")
    return dict(toolchain.versions(names))


def run(ctx: TaskContext) -> JsonDict:
    import torch

    params = ctx.params
    model = load_model(params["model"], ctx.inputs, ctx.context.get("search_path", []))
    arrays = random_arrays(params["inputs"], params["example_shapes"], seed=0)
    args = tuple(torch.from_numpy(arrays[t["name"]]) for t in params["inputs"])
    input_names = [t["name"] for t in params["inputs"]]
    output_names = [t["name"] for t in params["outputs"]]
    model = with_declared_outputs(model, args, output_names)
    dynamo = params["exporter"] == "dynamo"
    # The dynamo exporter's own graph optimisation is kept; simplify is a task of its own.
    options: dict[str, Any] = {"optimize": True, "verify": False, "external_data": False} if dynamo else {}
    # torch prints progress and deprecation notes; keep them out of the user's terminal and
    # record them instead.
    captured = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(captured):
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                model,
                args,
                str(ctx.output(OUTPUT)),
                input_names=input_names,
                output_names=output_names,
                opset_version=params["opset"],
                dynamic_axes=dynamic_axes(params) or None,
                dynamo=dynamo,
                **options,
            )
        except Exception as error:
            raise TaskError(
                f"torch.onnx.export ({params['exporter']}, opset {params['opset']}) failed: "
                f"{type(error).__name__}: {_first_line(error)}",
                [
                    "try the other exporter (export.exporter: torchscript | dynamo) or another opset",
                    *captured.getvalue().strip().splitlines()[-5:],
                ],
            ) from error
    if not ctx.output(OUTPUT).exists():
        raise TaskError("torch.onnx.export finished without writing a model")
    import onnx

    baked = baked_dims(
        onnx.load(str(ctx.output(OUTPUT)), load_external_data=False), params["inputs"], params["outputs"]
    )
    if baked:
        raise TaskError("the exported graph lost dynamic dims the spec declares", [*baked, f"hint: {HINT}"])
    notes = sorted({_first_line(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)})
    return {"exporter": params["exporter"], "opset": params["opset"], "exporter_notes": notes[:10]}


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""


TASK = TaskKind(kind="export", version=4, outputs=(OUTPUT,), tools=tools, run=run)
