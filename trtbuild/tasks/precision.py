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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError
from trtbuild.plan import toolchain
from trtbuild.tasks.base import JsonDict, TaskContext, TaskKind
from trtbuild.tasks.calibration import calibration_arrays, split_holdout

OUTPUT = "model.onnx"
MODELOPT_DISTRIBUTIONS = ("nvidia-modelopt", "onnx", "onnxruntime", "onnx-graphsurgeon", "polygraphy")


def tools(params: Mapping[str, Any]) -> JsonDict:
    if params["precision"] == "fp32":
        return {}
    return dict(toolchain.versions(MODELOPT_DISTRIBUTIONS))


def run(ctx: TaskContext) -> JsonDict:
    precision = ctx.params["precision"]
    source = ctx.inputs["model.onnx"]
    if precision == "fp32":
        os.link(source, ctx.output(OUTPUT))
        return {"precision": "fp32", "method": "pass-through"}
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured if quiet else sys.stderr):
        try:
            _quiet_modelopt(quiet)
            if precision in ("fp16", "bf16"):
                return _autocast(ctx, source, precision)
            return _quantize(ctx, source, precision)
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


def _autocast(ctx: TaskContext, source: Path, precision: str) -> JsonDict:
    import onnx
    from modelopt.onnx.autocast import convert_to_mixed_precision

    options = ctx.params["autocast"]
    model = convert_to_mixed_precision(
        onnx_path=str(source),
        low_precision_type=precision,
        keep_io_types=options["keep_io_types"],
        nodes_to_exclude=list(options["exclude_nodes"]) or None,
        op_types_to_exclude=list(options["exclude_op_types"]) or None,
    )
    onnx.save(model, str(ctx.output(OUTPUT)))
    kept = sum(1 for node in model.graph.node if node.op_type == "Cast")
    return {"precision": precision, "method": "modelopt autocast", "casts": kept}


def _quantize(ctx: TaskContext, source: Path, precision: str) -> JsonDict:
    from modelopt.onnx.quantization import quantize

    calibration = ctx.params["calibration"]
    data = calibration_arrays(
        calibration, ctx.params.get("inputs", []), ctx.inputs, ctx.context.get("search_path", [])
    )
    holdout = calibration.get("holdout")
    if holdout:
        data = split_holdout(data, holdout)[0]
    quantize(
        onnx_path=str(source),
        quantize_mode=precision,
        calibration_data=data,
        output_path=str(ctx.output(OUTPUT)),
        calibration_eps=["cpu"],
        # quantize() reconfigures ModelOpt's logging at this level on every call.
        log_level="INFO" if logging.getLogger().getEffectiveLevel() <= logging.INFO else "ERROR",
    )
    meta: JsonDict = {"precision": precision, "method": "modelopt q/dq", "calibration": calibration["source"]}
    if calibration["source"] == "random" or calibration.get("others"):
        # Random calibration (for every input, or for inputs the images do not feed) is marked so
        # that no one ships it by mistake.
        meta["production_ready"] = False
        ctx.warn("calibrated on random data: fine for trying things out, not fit for production")
    return meta


TASK = TaskKind(kind="precision", version=1, outputs=(OUTPUT,), tools=tools, run=run)
