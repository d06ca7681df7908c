"""simplify: constant folding and graph clean-up with onnxsim.

When onnxsim fails on a model (it does on some control flow and very large graphs) the task keeps
the exported graph unchanged and says so in its result and on the terminal: never silently.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from typing import Any

from trtbuild.plan import toolchain
from trtbuild.tasks.base import JsonDict, TaskContext, TaskKind
from trtbuild.tasks.lint import baked_dims

OUTPUT = "model.onnx"


def tools(params: Mapping[str, Any]) -> JsonDict:
    return dict(toolchain.versions(("onnx", "onnxsim")))


def run(ctx: TaskContext) -> JsonDict:
    import onnx
    import onnxsim

    source = ctx.inputs["model.onnx"]
    model = onnx.load(str(source))
    nodes_before = len(model.graph.node)
    try:
        simplified, check_ok = onnxsim.simplify(model)
    except Exception as error:  # onnxsim raises bare RuntimeErrors from its C++ core
        return _pass_through(ctx, f"onnxsim failed: {type(error).__name__}: {str(error).strip()[:500]}")
    if not check_ok:
        return _pass_through(ctx, "onnxsim's output did not match the original graph on random inputs")
    baked = baked_dims(simplified, ctx.params.get("inputs", []), ctx.params.get("outputs", []))
    if baked:
        return _pass_through(ctx, "onnxsim fixed dynamic dims: " + "; ".join(baked))
    onnx.save(simplified, str(ctx.output(OUTPUT)))
    return {"simplified": True, "nodes_before": nodes_before, "nodes_after": len(simplified.graph.node)}


def _pass_through(ctx: TaskContext, reason: str) -> JsonDict:
    ctx.warn(f"graph passed through unsimplified: {reason}")
    shutil.copyfile(ctx.inputs["model.onnx"], ctx.output(OUTPUT))
    return {"simplified": False, "reason": reason}


TASK = TaskKind(kind="simplify", version=1, outputs=(OUTPUT,), tools=tools, run=run)
