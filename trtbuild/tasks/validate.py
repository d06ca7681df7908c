"""validate: PyTorch fp32 reference vs the cell's ONNX graph (ONNX Runtime, CPU) and its engine.

The engine is run only where a GPU its flavour supports is present; elsewhere its comparison is
recorded as skipped with the reason, never as passed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trtbuild.backends.trt.runner import run_engine, why_engine_cannot_run
from trtbuild.errors import TaskError
from trtbuild.plan import toolchain
from trtbuild.tasks import metrics as M
from trtbuild.tasks.base import JsonDict, TaskContext, TaskKind
from trtbuild.tasks.sampling import random_arrays, sample_shapes
from trtbuild.tasks.torch_model import as_output_list, load_model

OUTPUT = "validation.json"


def tools(params: Mapping[str, Any]) -> JsonDict:
    return dict(toolchain.versions(("torch", "onnxruntime", "numpy")))


def run(ctx: TaskContext) -> JsonDict:
    params = ctx.params
    feeds_per_sample = _samples(params)
    references = _reference_outputs(ctx, feeds_per_sample)
    output_names = [t["name"] for t in params["outputs"]]
    tolerance = params["tolerance"]
    candidates: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    onnxruntime_outputs = _onnxruntime_outputs(ctx, feeds_per_sample, output_names)
    if isinstance(onnxruntime_outputs, str):
        skipped["onnxruntime"] = onnxruntime_outputs
    else:
        candidates["onnxruntime"] = onnxruntime_outputs
    reason = why_engine_cannot_run(params["backend"], params["targets"])
    if reason is None:
        candidates["engine"] = [
            _ordered(run_engine(params["backend"], ctx.inputs["model.engine"], feeds), output_names)
            for feeds in feeds_per_sample
        ]
    report: JsonDict = {
        "precision": params["precision"],
        "samples": len(feeds_per_sample),
        "seed": params["seed"],
        "shapes": [{name: list(a.shape) for name, a in feeds.items()} for feeds in feeds_per_sample],
        "tolerance": tolerance,
        "reference": "torch fp32 CPU",
        "candidates": {},
    }
    failures: list[dict[str, Any]] = []
    for candidate, outputs in candidates.items():
        result = _compare_candidate(references, outputs, output_names, tolerance)
        failures += [{"candidate": candidate, **failure} for failure in result["failures"]]
        report["candidates"][candidate] = result
    if reason is not None:
        skipped["engine"] = reason
    for candidate, why in skipped.items():
        report["candidates"][candidate] = {"status": "skipped", "reason": why}
    # With nothing compared, nothing is known: say so rather than pass or fail the gate.
    verdict = "failed" if failures else ("passed" if candidates else "unverified")
    if verdict == "unverified":
        ctx.warn(
            "nothing could be compared on this machine: " + "; ".join(f"{c}: {w}" for c, w in skipped.items())
        )
    report.update(passed=not failures, verdict=verdict, failures=failures)
    ctx.output(OUTPUT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return {
        "passed": not failures,
        "verdict": verdict,
        "failures": failures,
        "engine": "ran" if reason is None else "skipped",
    }


def _samples(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    shapes = sample_shapes(params["inputs"], params["profiles"], params["samples"], params["seed"])
    return [
        random_arrays(params["inputs"], sample, seed=params["seed"] * 100_003 + index)
        for index, sample in enumerate(shapes)
    ]


def _reference_outputs(ctx: TaskContext, feeds_per_sample: list[dict[str, Any]]) -> list[list[Any]]:
    import torch

    params = ctx.params
    model = load_model(params["model"], ctx.inputs, ctx.context.get("search_path", []))
    names = [t["name"] for t in params["outputs"]]
    references = []
    with torch.inference_mode():
        for feeds in feeds_per_sample:
            args = [torch.from_numpy(feeds[t["name"]]) for t in params["inputs"]]
            outputs = as_output_list(model(*args), names)
            references.append([out.detach().float().numpy() for out in outputs])
    return references


def _onnxruntime_outputs(
    ctx: TaskContext, feeds_per_sample: list[dict[str, Any]], names: list[str]
) -> list[list[Any]] | str:
    """The graph's outputs on ONNX Runtime's CPU provider, or why it cannot run the graph here."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            str(ctx.inputs["model.onnx"]), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:
        message = str(error).strip()
        # The CPU provider lacks some low-precision kernels (bf16 Conv, fp8): a limit of this
        # machine's runtime, not a defect of the graph.
        if "NOT_IMPLEMENTED" in message:
            return f"ONNX Runtime (CPU) cannot run this graph: {message.split(':', 3)[-1].strip()[:300]}"
        raise TaskError(f"ONNX Runtime cannot load the graph: {message[:500]}") from error
    graph_outputs = [o.name for o in session.get_outputs()]
    missing = [name for name in names if name not in graph_outputs]
    if missing:
        raise TaskError(f"the ONNX graph has no outputs named {missing}; it has {graph_outputs}")
    return [session.run(names, feeds) for feeds in feeds_per_sample]


def _ordered(outputs: Mapping[str, Any], names: list[str]) -> list[Any]:
    return [outputs[name] for name in names]


def _compare_candidate(
    references: list[list[Any]], outputs: list[list[Any]], names: list[str], tolerance: Mapping[str, Any]
) -> JsonDict:
    per_output: JsonDict = {}
    failures: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        samples = [M.compare(ref[index], got[index]) for ref, got in zip(references, outputs, strict=True)]
        worst = M.aggregate(samples)
        allclose: bool | None = None  # None: no atol/rtol gate was asked for
        if tolerance.get("atol") is not None or tolerance.get("rtol") is not None:
            atol, rtol = tolerance.get("atol") or 0.0, tolerance.get("rtol") or 0.0
            allclose = all(
                M.within_tolerance(ref[index], got[index], atol, rtol)
                for ref, got in zip(references, outputs, strict=True)
            )
        per_output[name] = {**worst, "allclose": allclose}
        failures += M.gate(name, worst, allclose, tolerance)
    return {"status": "compared", "outputs": per_output, "passed": not failures, "failures": failures}


TASK = TaskKind(kind="validate", version=3, outputs=(OUTPUT,), tools=tools, run=run)
