"""build: ONNX -> serialized engine through the TensorRT adapter, plus engine.json."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from trtbuild.backends.trt import flavour as flavours
from trtbuild.backends.trt.worker import build_in_subprocess
from trtbuild.plan import toolchain
from trtbuild.tasks.base import JsonDict, TaskContext, TaskKind

ENGINE = "model.engine"
ENGINE_JSON = "engine.json"


def tools(params: Mapping[str, Any]) -> JsonDict:
    return flavours.tool_facts(params["backend"])


def run(ctx: TaskContext) -> JsonDict:
    params = ctx.params
    flavour = params["backend"]
    onnx_path = ctx.inputs["model.onnx"]
    io = build_in_subprocess(
        {
            "flavour": flavour,
            "onnx": str(onnx_path),
            "engine": str(ctx.output(ENGINE)),
            "profiles": params["profiles"],
            "workspace": params["workspace"],
            "optimization_level": params["optimization_level"],
            "targets": params["targets"],
        },
        ctx.outdir.parent,
    )
    engine = ctx.output(ENGINE).read_bytes()
    found = toolchain.first_installed(
        toolchain.TENSORRT_RTX_DISTRIBUTIONS
        if flavour == flavours.TENSORRT_RTX
        else toolchain.TENSORRT_DISTRIBUTIONS
    )
    description = {
        **io,
        "backend": flavour,
        "backend_version": found[1] if found else None,
        "targets": list(params["targets"])
        or (list(flavours.RTX_DEFAULT_TARGETS) if flavour == flavours.TENSORRT_RTX else ["build GPU"]),
        "precision": params["precision"],
        "profiles": params["profiles"],
        "builder": {"workspace": params["workspace"], "optimization_level": params["optimization_level"]},
        "onnx_sha256": _sha256(onnx_path.read_bytes()),
        "engine_sha256": _sha256(engine),
        "engine_bytes": len(engine),
    }
    ctx.output(ENGINE_JSON).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
    return {"engine_bytes": len(engine), "backend": flavour}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TASK = TaskKind(kind="build", version=4, outputs=(ENGINE, ENGINE_JSON), tools=tools, run=run)
