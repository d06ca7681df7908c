"""The resolver: each spec's cells -> task nodes; identical tasks across cells and configs are one.

Params are exactly what a task's output depends on, in canonical JSON form; facts that must not
change the output (where to import the model from) go to the node's context instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from trtbuild.backends.trt import flavour as flavours
from trtbuild.errors import ConfigError, Problem, UsageError
from trtbuild.plan.calibration import calibration_inputs
from trtbuild.plan.code import code_identity
from trtbuild.plan.graph import CellArtifact, CellPlan, Dep, Graph, TaskNode, canonicalize
from trtbuild.spec.loader import module_search_path
from trtbuild.spec.model import AUTOCAST_PRECISIONS, QUANTIZED_PRECISIONS, Cell, Spec, Tolerance
from trtbuild.tasks.sampling import example_shapes


def resolve(specs: Iterable[Spec], only: Iterable[str] = ()) -> Graph:
    graph = Graph()
    wanted = set(only)
    for spec in specs:
        cells = [cell for cell in spec.cells if not wanted or cell.name in wanted]
        if cells:
            _resolve_spec(spec, cells, graph)
    _name_nodes(graph)
    if wanted:
        known = {cell.name for spec in specs for cell in spec.cells}
        unknown = sorted(wanted - known)
        if unknown:
            raise UsageError(
                f"--only names no cell: {', '.join(unknown)} (cells are: {', '.join(sorted(known))})"
            )
    return graph


def search_path(spec: Spec) -> list[str]:
    return module_search_path(spec.directory)


def _resolve_spec(spec: Spec, cells: list[Cell], graph: Graph) -> None:
    """Each cell's tasks from the cell's own view of the spec; the graph merges identical ones."""
    for cell in cells:
        _resolve_cell(cell.view, cell, graph)


def _resolve_cell(spec: Spec, cell: Cell, graph: Graph) -> None:
    name = spec.model.name
    model, source_files = _model_params(spec)
    files = dict(source_files)
    if spec.model.checkpoint is not None:
        files["checkpoint"] = spec.model.checkpoint
    context = {"search_path": search_path(spec), "config": str(spec.path)}
    inputs = [
        {"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "range": list(t.value_range)}
        for t in spec.inputs
    ]
    outputs = [
        {"name": o.name, "shape": list(o.shape) if o.shape is not None else None} for o in spec.outputs
    ]
    profiles = [
        {
            "name": p.name,
            "shapes": {
                n: {"min": list(r.min), "opt": list(r.opt), "max": list(r.max)} for n, r in p.shapes.items()
            },
        }
        for p in spec.profiles
    ]
    # What both export and validate (which runs the PyTorch reference) know of the model.
    model_io = {"model": model, "inputs": inputs, "outputs": outputs}

    def node(kind: str, params: dict[str, Any], deps: dict[str, Dep], **more: Any) -> TaskNode:
        # Ids are provisional until every cell is resolved: see `_name_nodes`.
        return graph.add(
            TaskNode(
                id=f"{name}/{cell.name}/{kind}",
                kind=kind,
                model=name,
                params=canonicalize(params),
                deps=deps,
                cells=[cell.name],
                **more,
            )
        )

    export_params = {
        **model_io,
        "example_shapes": example_shapes(inputs, profiles),
        "opset": spec.export.opset,
        "exporter": spec.export.exporter,
    }
    graph_node = node("export", export_params, {}, files=files, context=context)
    if spec.simplify:
        # simplify lints the dims it may fold, so it knows the declared inputs and outputs.
        lint = {"inputs": inputs, "outputs": outputs}
        graph_node = node("simplify", lint, {"model.onnx": Dep(graph_node.id, "model.onnx")})
    precision_params, precision_files = _precision_params(spec, cell, inputs, profiles)
    cell_graph = node(
        "precision",
        precision_params,
        {"model.onnx": Dep(graph_node.id, "model.onnx")},
        files=precision_files,
        context=context,
    )
    backend = _backend(spec)
    build_params = {
        "backend": backend,
        "precision": cell.precision,
        "profiles": profiles,
        "workspace": spec.build.workspace,
        "optimization_level": spec.build.optimization_level,
        "targets": list(spec.build.targets),
    }
    build = node("build", build_params, {"model.onnx": Dep(cell_graph.id, "model.onnx")})
    validate_params, validate_files = _validate_params(spec, cell, inputs, profiles)
    validate_params.update(
        {**model_io, "profiles": profiles, "backend": backend, "targets": list(spec.build.targets)}
    )
    validate_deps = {
        "model.onnx": Dep(cell_graph.id, "model.onnx"),
        "model.engine": Dep(build.id, "model.engine"),
        "engine.json": Dep(build.id, "engine.json"),
    }
    validate = node(
        "validate", validate_params, validate_deps, files={**files, **validate_files}, context=context
    )
    graph.cells.append(
        CellPlan(
            model=name,
            cell=cell.name,
            config=spec.path,
            artifacts=[
                CellArtifact("model.onnx", cell_graph.id, "model.onnx"),
                CellArtifact("model.engine", build.id, "model.engine"),
                CellArtifact("engine.json", build.id, "engine.json"),
                CellArtifact("validation.json", validate.id, "validation.json"),
            ],
        )
    )


def _validate_params(
    spec: Spec, cell: Cell, inputs: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Path]]:
    """What the validate task compares and gates, and the files (data, metric code) it reads."""
    validate = spec.validate
    tolerance = validate.tolerance.get(cell.precision) or Tolerance()
    params: dict[str, Any] = {
        "samples": validate.samples,
        "seed": validate.seed,
        "precision": cell.precision,
        "tolerance": {
            "atol": tolerance.atol,
            "rtol": tolerance.rtol,
            "cosine": tolerance.cosine,
            "top1": tolerance.top1,
            "top5": tolerance.top5,
            "custom": {
                name: {"min": low, "max": high} for name, (low, high) in sorted(tolerance.custom.items())
            },
        },
        "classifiers": [o.name for o in spec.outputs if o.classifier],
        "metric": None,
        "data": None,
    }
    files: dict[str, Path] = {}
    if validate.data is not None:
        params["data"] = {"batch": validate.data_batch}
        files["validation-data"] = validate.data
    elif validate.holdout is not None and spec.calibration is not None:
        calibration, files = calibration_inputs(spec.calibration, inputs, profiles, search_path(spec))
        params["data"] = {
            "batch": validate.data_batch,
            "holdout": validate.holdout,
            "calibration": calibration,
        }
    if validate.metric is not None:
        package, code = code_identity(validate.metric.partition(":")[0], search_path(spec), "metric:")
        params["metric"] = {"function": validate.metric, "package": package}
        files.update(code)
    return params, files


# Kinds that do not depend on the cell's precision or targets: usually one node for all cells.
SHARED_KINDS = ("export", "simplify")


def _name_nodes(graph: Graph) -> None:
    """Final ids: `<model>/<kind>` for a shared task used by every cell of its model, else
    `<model>/<first cell>/<kind>` (a cell has one task of each kind, so these are unique)."""
    cells_of: dict[str, set[str]] = {}
    for cell in graph.cells:
        cells_of.setdefault(cell.model, set()).add(cell.cell)
    names = {}
    for node in graph.nodes.values():
        shared = node.kind in SHARED_KINDS and cells_of.get(node.model, set()) <= set(node.cells)
        names[node.id] = (
            f"{node.model}/{node.kind}" if shared else f"{node.model}/{node.cells[0]}/{node.kind}"
        )
    graph.rename(names)


def _precision_params(
    spec: Spec, cell: Cell, inputs: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Path]]:
    """The precision task's params and file inputs. Only what the precision uses enters them, so
    that (say) a new calibration file reruns the int8 cell and leaves fp16 cached."""
    params: dict[str, Any] = {"precision": cell.precision}
    files: dict[str, Path] = {}
    if cell.precision in AUTOCAST_PRECISIONS:
        autocast = spec.autocast
        params["autocast"] = {
            "keep_io_types": autocast.keep_io_types,
            "exclude_nodes": list(autocast.exclude_nodes),
            "exclude_op_types": list(autocast.exclude_op_types),
        }
    elif cell.precision in QUANTIZED_PRECISIONS and spec.calibration is not None:
        params["calibration"], files = calibration_inputs(
            spec.calibration, inputs, profiles, search_path(spec)
        )
        if spec.validate.holdout is not None:
            params["calibration"]["holdout"] = spec.validate.holdout  # those samples validate instead
        if params["calibration"]["source"] == "random":
            params["inputs"] = inputs
    return params, files


def _backend(spec: Spec) -> str:
    requested = spec.build.backend
    if spec.build.targets and requested == "auto":
        return flavours.TENSORRT_RTX  # compute-capability targets are a TensorRT-RTX notion
    if spec.build.targets and requested == flavours.TENSORRT:
        raise ConfigError(
            Problem(
                "build.targets is set but build.backend is tensorrt, which builds for the local GPU only",
                location=spec.location(("build", "targets")),
                field_path="build.targets",
                hint="remove build.targets, or use backend: tensorrt-rtx to build ahead of time for them",
            )
        )
    return flavours.resolve(requested)


def _model_params(spec: Spec) -> tuple[dict[str, Any], dict[str, Path]]:
    """The model's identity for keys: its source, kwargs, and what its code is (see code_identity)."""
    package, files = code_identity(spec.model.module, search_path(spec), "source:")
    model = {"source": spec.model.source, "kwargs": spec.model.kwargs, "package": package}
    return model, files
