"""precision: the ONNX graph in the cell's precision, made by NVIDIA ModelOpt.

TensorRT 11 and TensorRT-RTX are strongly typed: precision is a property of the graph, not a
builder flag. fp16 / bf16 come from AutoCast (a mixed-precision rewrite that keeps risky nodes in
fp32); int8 / fp8 from explicit Q/DQ quantization calibrated on the spec's calibration data. fp32
hands the graph on unchanged: its output is the same blob as its input, so it costs no copy.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trtbuild import toolchain
from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import AUTOCAST_PRECISIONS, QUANTIZED_PRECISIONS, AutocastSpec, Cell, Spec
from trtbuild.tasks import calibration as calibrations
from trtbuild.tasks.base import Derived, JsonDict, Planned, TaskContext, TaskKind
from trtbuild.tasks.params import user_code_context
from trtbuild.tasks.precision_checks import calibration_problems, modelopt_problems
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
    version = 3  # 3: precision.json (nodes and weights per type, kept nodes); AutoCast's thresholds
    outputs = (GRAPH, RECORD)

    def derive(self, spec: Spec, cell: Cell) -> Derived[PrecisionParams]:
        if cell.precision in AUTOCAST_PRECISIONS:
            return Derived(PrecisionParams(cell.precision, autocast=spec.autocast))
        if cell.precision in QUANTIZED_PRECISIONS and spec.calibration is not None:
            calibration, files = calibrations.for_spec(spec)
            params = PrecisionParams(cell.precision, calibration=calibration)
            return Derived(params, files, user_code_context(spec))
        return Derived(PrecisionParams(cell.precision))

    def check_spec(self, spec: Spec) -> list[Problem]:
        return calibrations.spec_problems(spec)

    def tools(self, params: PrecisionParams) -> JsonDict:
        if params.precision == "fp32":
            return {}
        return dict(toolchain.versions(MODELOPT_DISTRIBUTIONS))

    def preflight(self, spec: Spec, tasks: Sequence[Planned[PrecisionParams]]) -> list[Problem]:
        converting = [task for task in tasks if task.params.precision != "fp32"]
        return [*modelopt_problems(spec, converting), *calibration_problems(spec, converting)]

    def run(self, ctx: TaskContext[PrecisionParams]) -> JsonDict:
        precision = ctx.params.precision
        source = ctx.inputs[GRAPH]
        if precision == "fp32":
            os.link(source, ctx.output(GRAPH))
            return write_record(ctx, {"precision": "fp32", "method": "pass-through"})
        quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
        captured = io.StringIO()
        with (
            contextlib.redirect_stdout(captured),
            contextlib.redirect_stderr(captured if quiet else sys.stderr),
        ):
            try:
                _quiet_modelopt(quiet)
                if ctx.params.autocast is not None:
                    return _autocast(ctx, source, ctx.params.autocast)
                return _quantize(ctx, source)
            except TaskError:
                raise
            except Exception as error:  # ModelOpt raises a variety of errors from its ONNX passes
                raise TaskError(
                    f"ModelOpt could not make the {precision} graph: {type(error).__name__}: {error}",
                    captured.getvalue().strip().splitlines()[-5:],
                ) from error


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

    precision = ctx.params.precision
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
    onnx.save(model, str(ctx.output(GRAPH)))
    return write_record(ctx, record(model, precision, "modelopt autocast", reasons))


def _quantize(ctx: TaskContext[PrecisionParams], source: Path) -> JsonDict:
    import onnx
    from modelopt.onnx.quantization import quantize

    precision, calibration = ctx.params.precision, ctx.params.calibration
    if calibration is None:  # the spec checks require calibration data for quantized cells
        raise TaskError(f"the {precision} cell has no calibration data")
    output = ctx.output(GRAPH)
    quantize(
        onnx_path=str(source),
        quantize_mode=precision,
        calibration_data=calibration.calibration_arrays(ctx.inputs, ctx.search_path),
        output_path=str(output),
        calibration_eps=["cpu"],
        # quantize() reconfigures ModelOpt's logging at this level on every call.
        log_level="INFO" if logging.getLogger().getEffectiveLevel() <= logging.INFO else "ERROR",
    )
    meta = write_record(ctx, record(onnx.load(str(output)), precision, "modelopt q/dq", None))
    meta["calibration"] = calibration.source
    if not calibration.production_ready():
        # Random calibration (for every input, or for inputs the images do not feed) is marked so
        # that no one ships it by mistake.
        meta["production_ready"] = False
        ctx.warn("calibrated on random data: fine for trying things out, not fit for production")
    return meta


KIND = Precision()
