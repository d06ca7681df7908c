"""precision: the ONNX graph in the cell's precision, made by NVIDIA ModelOpt.

TensorRT 11 and TensorRT-RTX are strongly typed: precision is a property of the graph, not a
builder flag. fp16 / bf16 come from AutoCast (a mixed-precision rewrite that keeps risky nodes in
fp32); int8 / fp8 from explicit Q/DQ quantization calibrated on the spec's calibration data. fp32
hands the graph on unchanged: its output is the same blob as its input, so it costs no copy.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trtbuild import toolchain
from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import AUTOCAST_PRECISIONS, QUANTIZED_PRECISIONS, AutocastSpec, Cell, Spec
from trtbuild.tasks import calibration as calibrations
from trtbuild.tasks.base import Derived, JsonDict, Planned, TaskContext, TaskKind
from trtbuild.tasks.params import user_code_context
from trtbuild.tasks.precision_checks import (
    autocast_context,
    calibration_problems,
    exclude_nodes_problems,
    modelopt_problems,
)
from trtbuild.tasks.precision_record import RECORD, autocast_reasons, record, write_record

NAME = "precision"
GRAPH = "model.onnx"  # its input and its output
MODELOPT_DISTRIBUTIONS = ("nvidia-modelopt", "onnx", "onnxruntime", "onnx-graphsurgeon", "polygraphy")


@dataclass(frozen=True)
class PrecisionParams:
    """Only what the precision uses: new calibration data reruns the int8 cell and leaves fp16 cached."""

    precision: str
    autocast: AutocastSpec | None = None  # fp16, bf16
    calibration: calibrations.Calibration | None = None  # int8, fp8


class Precision(TaskKind[PrecisionParams]):
    name = NAME
    # 3: shape annotations dropped; 4: random calibration data from the `values` generators;
    # 5: an autocast.exclude_nodes pattern that matches no node fails the task; 6: precision.json
    # (nodes and weights per type, kept nodes) and AutoCast's thresholds; 7: ModelOpt's graph in
    # canonical order (graph_order.py), so it no longer follows the hash seed; 8: a calibration
    # function's local code is keyed with the installed distributions it imports, by version
    version = 8
    outputs = (GRAPH, RECORD)

    def cost(self, params: PrecisionParams) -> float:
        # Calibration (int8, fp8) is the matrix's longest task, AutoCast (fp16, bf16) a fraction.
        return 15.0 if params.calibration is not None else 7.0 if params.autocast is not None else 0.3

    def derive(self, spec: Spec, cell: Cell) -> Derived[PrecisionParams]:
        if cell.precision in AUTOCAST_PRECISIONS:
            return Derived(
                PrecisionParams(cell.precision, autocast=spec.autocast), {}, autocast_context(spec)
            )
        if cell.precision in QUANTIZED_PRECISIONS and spec.calibration is not None:
            calibration, files = calibrations.for_spec(spec)
            params = PrecisionParams(cell.precision, calibration=calibration)
            return Derived(params, files, user_code_context(spec))
        return Derived(PrecisionParams(cell.precision))

    def check_spec(self, spec: Spec) -> list[Problem]:
        return [*calibrations.spec_problems(spec), *exclude_nodes_problems(spec)]

    def tools(self, params: PrecisionParams) -> JsonDict:
        if params.precision == "fp32":
            return {}
        return dict(toolchain.versions(MODELOPT_DISTRIBUTIONS))

    def preflight(self, spec: Spec, tasks: Sequence[Planned[PrecisionParams]]) -> list[Problem]:
        converting = [task for task in tasks if task.params.precision != "fp32"]
        return [*modelopt_problems(spec, converting), *calibration_problems(spec, converting)]

    def run(self, ctx: TaskContext[PrecisionParams]) -> JsonDict:
        from trtbuild.tasks.output_capture import captured_output

        precision = ctx.params.precision
        source = ctx.inputs[GRAPH]
        if precision == "fp32":
            os.link(source, ctx.output(GRAPH))
            return write_record(ctx, {"precision": "fp32", "method": "pass-through"})
        quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
        if quiet:
            import onnxruntime

            # ModelOpt's own ORT sessions log failed kernels in red from C++, past any Python
            # redirect; ModelOpt handles those itself, and what fails the task is reported by it.
            onnxruntime.set_default_logger_severity(4)
        captured = io.StringIO()
        with captured_output(captured, captured if quiet else None):
            try:
                _quiet_modelopt(quiet)
                if ctx.params.autocast is not None:
                    return _autocast(ctx, source, ctx.params.autocast)
                return _quantize(ctx, source)
            except TaskError:
                raise
            except Exception as error:  # ModelOpt raises a variety of errors from its ONNX passes
                raise _modelopt_failure(ctx.params, error, captured.getvalue()) from error


def _modelopt_failure(params: PrecisionParams, error: Exception, output: str) -> TaskError:
    """ModelOpt's exception as a message: ONNX Runtime's (ModelOpt runs the graph to calibrate and to
    pick what AutoCast converts) name a node; what ModelOpt printed last comes with it."""
    from trtbuild.tasks.onnxruntime_errors import onnxruntime_failure

    doing = f"ModelOpt could not make the {params.precision} graph"
    if "ONNXRuntimeError" in str(error):
        failure = onnxruntime_failure(error, f"{doing}: ONNX Runtime failed")
        message, hints = str(failure), failure.details
    else:
        message, hints = f"{doing}: {type(error).__name__}: {error}", []
    if params.autocast is not None:
        hints.append(
            "hint: keep the failing node in fp32 (autocast.exclude_nodes) or its op type "
            "(autocast.exclude_op_types); TRTBUILD_LOG=info shows ModelOpt's log"
        )
    else:
        hints.append("hint: TRTBUILD_LOG=info shows ModelOpt's log")
    return TaskError(message, [*output.strip().splitlines()[-5:], *hints])


def _quiet_modelopt(quiet: bool) -> None:
    """ModelOpt logs at INFO through handlers of its own, bound to the stdout of the moment it was
    imported, and progress bars: keep the user's terminal (and `--json` stdout) clean unless
    TRTBUILD_LOG asks for more. Its records still reach the root logger, which filters them."""
    import modelopt.onnx  # noqa: F401  (configures its loggers on import: quieten them after that)

    if not quiet:
        return
    for name in [
        n for n in logging.root.manager.loggerDict if n.startswith(("modelopt", "onnxscript", "onnx_ir"))
    ]:
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        for handler in logger.handlers[:]:
            logger.removeHandler(handler)


def _autocast(ctx: TaskContext[PrecisionParams], source: Path, options: AutocastSpec) -> JsonDict:
    import onnx
    from modelopt.onnx.autocast import convert_to_mixed_precision

    from trtbuild.tasks.graph_order import canonical_order
    from trtbuild.tasks.shape_annotations import drop_intermediate_shapes

    precision = ctx.params.precision
    _check_exclude_nodes(ctx, source, options)
    with autocast_reasons() as reasons:
        model = convert_to_mixed_precision(
            onnx_path=str(source),
            low_precision_type=precision,
            keep_io_types=options.keep_io_types,
            nodes_to_exclude=list(options.exclude_nodes) or None,
            op_types_to_exclude=list(options.exclude_op_types) or None,
            data_max=options.data_max,
            init_max=options.init_max,
            max_depth_of_reduction=options.max_depth_of_reduction,
        )
    canonical_order(model)  # AutoCast orders its casts by a Python set: by the hash seed
    document = record(model, precision, "modelopt autocast", reasons)  # before the annotations go
    # AutoCast names dims it could not infer `unk`, one name for different sizes: not handed on.
    dropped = drop_intermediate_shapes(model)
    onnx.save(model, str(ctx.output(GRAPH)))
    return {**write_record(ctx, document), "shape_annotations_dropped": dropped}


def _check_exclude_nodes(ctx: TaskContext[PrecisionParams], source: Path, options: AutocastSpec) -> None:
    """Every exclude_nodes pattern keeps some node: AutoCast ignores one that keeps none, which
    would leave the node the user meant in low precision without a word."""
    from trtbuild.tasks import node_patterns

    if not options.exclude_nodes:
        return
    import onnx

    names = [node.name for node in onnx.load(str(source), load_external_data=False).graph.node]
    missed = node_patterns.unmatched(options.exclude_nodes, names)
    if not missed:
        return
    where = list(ctx.context.get("exclude_nodes_at", []))
    located = [f"{where[m.index]}: " if m.index < len(where) and where[m.index] else "" for m in missed]
    raise TaskError(
        "; ".join(
            f"{at}autocast.exclude_nodes[{m.index}] {node_patterns.quoted(m.pattern)} "
            "matches no node of the graph"
            for at, m in zip(located, missed, strict=True)
        ),
        [
            *(f"{node_patterns.quoted(m.pattern)}: {m.hint}" for m in missed),
            "node names are those of the graph given to AutoCast (the simplified export); "
            "`trtbuild debug precision CONFIG --cell NAME` names the nodes to keep in fp32",
        ],
    )


def _quantize(ctx: TaskContext[PrecisionParams], source: Path) -> JsonDict:
    import onnx
    from modelopt.onnx.quantization import quantize

    from trtbuild.tasks.graph_order import canonical_order
    from trtbuild.tasks.shape_annotations import drop_intermediate_shapes

    precision, calibration = ctx.params.precision, ctx.params.calibration
    if calibration is None:  # the spec checks require calibration data for quantized cells
        raise TaskError(f"the {precision} cell has no calibration data")
    output = ctx.output(GRAPH)
    quantize(
        onnx_path=str(_private_copy(source, ctx.outdir / "modelopt-input")),
        quantize_mode=precision,
        calibration_data=calibration.calibration_arrays(ctx.inputs, ctx.search_path),
        output_path=str(output),
        calibration_eps=["cpu"],
        # quantize() reconfigures ModelOpt's logging at this level on every call.
        log_level="INFO" if logging.getLogger().getEffectiveLevel() <= logging.INFO else "ERROR",
    )
    graph = onnx.load(str(output))
    canonical_order(graph)  # quantize runs AutoCast's converter too (the fp16 casts around Q/DQ)
    meta = write_record(ctx, record(graph, precision, "modelopt q/dq", None))
    meta["calibration"] = calibration.source
    meta["shape_annotations_dropped"] = drop_intermediate_shapes(graph)
    onnx.save(graph, str(output))
    if not calibration.production_ready():
        # Random calibration (for every input, or for inputs the images do not feed) is marked so
        # that no one ships it by mistake.
        meta["production_ready"] = False
        ctx.warn("calibrated on random data: fine for trying things out, not fit for production")
    return meta


def _private_copy(source: Path, folder: Path) -> Path:
    """A copy of the graph for a tool that rewrites its input: ModelOpt's quantize runs
    `onnx.shape_inference.infer_shapes_path` on it, which writes the file in place. The task's
    input is a hard link to the cache's blob (read-only, which does not stop root), and the same
    blob is the upstream's result and other cells' `model.onnx`: written through, it no longer
    matches its hash, and the cache drops it. Same file name, so ModelOpt names its
    intermediate files as before; the folder goes with the task's scratch space."""
    import shutil  # run-only, like every import below a task's run

    folder.mkdir()
    copy = folder / source.name
    shutil.copyfile(source, copy)
    return copy


KIND = Precision()
