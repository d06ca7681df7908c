"""validate: the PyTorch fp32 reference (the reference task's samples and outputs) vs the cell's ONNX
graph (ONNX Runtime, CPU) and its engine.

The engine is run only where a GPU its backend supports is present; elsewhere its comparison is
recorded as skipped with the reason, never as passed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild import toolchain
from trtbuild.backends.registry import get_backend
from trtbuild.errors import TaskError
from trtbuild.spec.model import AUTOCAST_PRECISIONS, Cell, Spec, Tolerance
from trtbuild.tasks import build
from trtbuild.tasks.base import Derived, JsonDict, Resources, TaskContext, TaskKind
from trtbuild.tasks.code import code_of
from trtbuild.tasks.importing import import_attribute
from trtbuild.tasks.params import OutputParams, output_params, user_code_context
from trtbuild.tasks.precision_record import RECORD, share_failures
from trtbuild.tasks.reference import OUTPUT as REFERENCE
from trtbuild.tasks.reference import ReferenceData, read_reference

NAME = "validate"
OUTPUT = "validation.json"


@dataclass(frozen=True)
class MetricParams:
    function: str  # "module:function" returning {name: number}
    package: str | None  # its distribution, when installed; local code is keyed by content
    imports: tuple[str, ...] = ()  # the installed distributions local code imports, by version


@dataclass(frozen=True)
class ValidateParams:
    precision: str
    tolerance: Tolerance
    classifiers: tuple[str, ...]  # outputs with top-1 / top-5 agreement
    metric: MetricParams | None
    # The samples, where they come from and the PyTorch outputs are the reference task's.
    outputs: tuple[OutputParams, ...]
    backend: str
    targets: tuple[str, ...]
    # The least share of nodes and of weights in the cell's precision (precision.json); None: no gate.
    min_low_precision: float | None = None


class Validate(TaskKind[ValidateParams]):
    name = NAME
    # 11: samples move each dynamic dim on its own (sampling.profile_points); 12: inputs made by
    # their `values` generators, a NaN/Inf reference fails its samples, which are not compared;
    # 13: the low-precision share gate (validate.min_low_precision); 14: samples counted from 1 in
    # a NaN reference's failure; 15: an overflow fails the onnxruntime candidate it was found in;
    # 16: a Cast of float32's fill values (finfo.min) to -inf is no overflow; 17: the result
    # records the float environment (CPUs, CPU model, threads) its metrics were computed in;
    # 18: the samples and PyTorch outputs come from the reference task (its reference.npz); an
    # fp16/bf16 cell's ONNX Runtime outputs come from the overflow scan's run unless it overflows;
    # 19: the machine's GPUs are key material (tools), since they decide whether and where the
    # engine candidate runs: a result a GPU-less machine shares through a remote cache (engine
    # skipped) must not stand for a GPU machine's, nor one GPU model's for another's; 20: a
    # metric's local code is keyed with the installed distributions it imports, by version
    version = 20
    outputs = (OUTPUT,)
    gate = OUTPUT  # the run takes the verdict from validation.json, not the result's metadata

    def derive(self, spec: Spec, cell: Cell) -> Derived[ValidateParams]:
        metric, metric_files = _metric(spec)
        params = ValidateParams(
            precision=cell.precision,
            tolerance=spec.validate.tolerance.get(cell.precision) or Tolerance(),
            classifiers=tuple(o.name for o in spec.outputs if o.classifier),
            metric=metric,
            outputs=output_params(spec),
            backend=build.backend_of(spec),
            targets=spec.build.targets,
            min_low_precision=spec.validate.min_low_precision.get(cell.precision),
        )
        return Derived(params, metric_files, user_code_context(spec))

    def cost(self, params: ValidateParams) -> float:
        return 12.0 if params.precision in AUTOCAST_PRECISIONS else 8.0  # the overflow scan

    def tools(self, params: ValidateParams) -> JsonDict:
        return {**toolchain.versions(("onnxruntime", "numpy")), "engine_gpus": list(toolchain.nvidia_gpus())}

    def resources(self, params: ValidateParams) -> Resources:
        # A datacenter engine runs only on the GPU type it was built on; TensorRT-RTX engines run on
        # any machine's GPU of their targets, and the ONNX candidates anywhere: a CPU task (its
        # engine candidate is compared where a GPU happens to be, and said skipped elsewhere).
        return Resources(memory=self.memory, gpu=build.build_gpu(params.backend, params.targets))

    def run(self, ctx: TaskContext[ValidateParams]) -> JsonDict:
        from trtbuild.tasks import metrics as M  # run-only helpers load with the task (a no-op skips them)

        reference = read_reference(ctx.inputs[REFERENCE])
        feeds_per_sample = reference.feeds
        unusable = _nonfinite_references(reference.outputs, [t.name for t in ctx.params.outputs])
        usable = {k for k in range(len(feeds_per_sample)) if not any(k in s for s in unusable.values())}
        onnxruntime, overflow = _onnxruntime_and_scan(ctx, feeds_per_sample, usable)
        candidates, skipped = _candidates(ctx, feeds_per_sample, onnxruntime)
        report, failures = _compare(ctx, reference, candidates, unusable, overflow)
        report["min_low_precision"] = ctx.params.min_low_precision
        failures += share_failures(ctx.inputs[RECORD], ctx.params.min_low_precision)
        for candidate, why in skipped.items():
            report["candidates"][candidate] = {"status": "skipped", "reason": why}
        # With nothing compared, nothing is known: say so rather than pass or fail the gate.
        verdict = "failed" if failures else ("passed" if candidates else "unverified")
        if verdict == "unverified":
            ctx.warn(
                "nothing could be compared on this machine: "
                + "; ".join(f"{c}: {w}" for c, w in skipped.items())
            )
        report.update(passed=not failures, verdict=verdict, failures=failures)
        report, failures = M.json_safe(report), M.json_safe(failures)
        ctx.output(OUTPUT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        engine_ran = "engine" not in skipped
        return {
            "passed": not failures,
            "verdict": verdict,
            "failures": failures,
            "engine": "ran" if engine_ran else "skipped",
            "reproducibility": _reproducibility(reference.manifest["torch_threads"]),
        }


def _reproducibility(torch_threads: int) -> JsonDict:
    """validation.json repeats byte for byte in one float environment; in another (CPU count, CPU
    model, thread settings) its metrics' last bits move, which verify tells from a real change.
    torch's threads are those the reference was computed with: validate itself imports no torch."""
    from trtbuild.tasks.float_environment import float_environment
    from trtbuild.tasks.onnx_tensors import INTRA_OP_THREADS

    environment = float_environment(torch_threads, INTRA_OP_THREADS)
    return {"byte_reproducible": True, "environment": environment}


def _metric(spec: Spec) -> tuple[MetricParams | None, dict[str, Path]]:
    metric = spec.validate.metric
    if metric is None:
        return None, {}
    code = code_of(spec, ("validate", "metric"), metric.partition(":")[0])
    return MetricParams(metric, code.package, code.packages()), code.keyed("metric:")


def _onnxruntime_and_scan(
    ctx: TaskContext[ValidateParams], feeds_per_sample: list[dict[str, Any]], usable: set[int]
) -> tuple[list[list[Any]] | str, JsonDict]:
    """ONNX Runtime's outputs per sample (or why it cannot run the graph here) and the overflow scan
    of fp16/bf16 cells, over the samples whose reference is finite (`usable`).

    One run serves both: the scan's, with every tensor kept in its own type, which is also closer
    to what the engine computes. When it finds an overflow, that run's outputs carry it, so ONNX
    Runtime's own run is compared instead (as before): the overflow stays its own failure."""
    from trtbuild.tasks.overflow import ExposedRun, scanned

    precision, names = ctx.params.precision, [t.name for t in ctx.params.outputs]
    if not scanned(precision):
        return _onnxruntime_outputs(ctx, feeds_per_sample, names), {"status": "not needed"}
    try:
        exposed = ExposedRun(ctx.inputs[build.GRAPH], precision, names)
        outputs = [exposed.run(feeds, k in usable) for k, feeds in enumerate(feeds_per_sample)]
    except TaskError as error:  # ONNX Runtime's own run says why, or fails the task, as before
        ctx.warn(f"the {precision} overflow scan was skipped: {error}")
        skipped = {"status": "skipped", "reason": str(error)}
        return _onnxruntime_outputs(ctx, feeds_per_sample, names), skipped
    overflow = exposed.result()
    if overflow["count"]:
        return _onnxruntime_outputs(ctx, feeds_per_sample, names), {**overflow, "compared": "own run"}
    return outputs, {**overflow, "compared": "this run"}


def _candidates(
    ctx: TaskContext[ValidateParams],
    feeds_per_sample: list[dict[str, Any]],
    onnxruntime_outputs: list[list[Any]] | str,
) -> tuple[dict[str, list[list[Any]]], dict[str, str]]:
    """Each candidate's outputs per sample, and the candidates that cannot run here, with why."""
    params = ctx.params
    names = [t.name for t in params.outputs]
    candidates: dict[str, list[list[Any]]] = {}
    skipped: dict[str, str] = {}
    if isinstance(onnxruntime_outputs, str):
        skipped["onnxruntime"] = onnxruntime_outputs
    else:
        candidates["onnxruntime"] = onnxruntime_outputs
    backend = get_backend(params.backend)
    reason = backend.why_engine_cannot_run(params.targets)
    if reason is None:
        engine = ctx.inputs[build.ENGINE]
        candidates["engine"] = [
            _ordered(backend.run_engine(engine, feeds), names) for feeds in feeds_per_sample
        ]
    else:
        skipped["engine"] = reason
    return candidates, skipped


def _compare(
    ctx: TaskContext[ValidateParams],
    reference: ReferenceData,
    candidates: Mapping[str, list[list[Any]]],
    unusable: Mapping[str, list[int]],
    overflow: JsonDict,
) -> tuple[JsonDict, list[dict[str, Any]]]:
    """The report of every compared candidate and the overflow scan, and the gate's failures."""
    params = ctx.params
    references, feeds_per_sample, manifest = reference.outputs, reference.feeds, reference.manifest
    metric = _custom_metric(ctx)
    report: JsonDict = {
        "precision": params.precision,
        "samples": len(feeds_per_sample),
        "seed": manifest["seed"],
        "inputs": manifest["origin"],
        "shapes": [{name: list(a.shape) for name, a in feeds.items()} for feeds in feeds_per_sample],
        "tolerance": tolerance_document(params.tolerance),
        "reference": "torch fp32 CPU",
        "candidates": {},
    }
    failures = _reference_failures(ctx, unusable, report["shapes"], manifest["generated"])
    for candidate, outputs in candidates.items():
        result = _compare_candidate(references, outputs, params, metric, unusable)
        failures += [{"candidate": candidate, **failure} for failure in result["failures"]]
        report["candidates"][candidate] = result
    report["overflow_scan"] = overflow
    if overflow.get("overflowed"):
        failure = {
            "output": overflow["overflowed"][0],
            "metric": f"{params.precision} overflow",
            "value": f"{overflow['count']} tensor(s) Inf/NaN",
            "threshold": "no Inf/NaN in any tensor",
        }
        failures.append({"candidate": "onnxruntime", **failure})
        # The scan ran the graph ONNX Runtime is compared on: its verdict is that candidate's too,
        # or the report's "ONNX Runtime" column says "passed" beside a failed cell.
        scanned = report["candidates"].get("onnxruntime")
        if scanned is not None:
            scanned["failures"] = [*scanned["failures"], failure]
            scanned["passed"] = False
    return report, failures


def tolerance_document(tolerance: Tolerance) -> JsonDict:
    """The gates as validation.json and the gate functions read them."""
    return {
        "atol": tolerance.atol,
        "rtol": tolerance.rtol,
        "cosine": tolerance.cosine,
        "top1": tolerance.top1,
        "top5": tolerance.top5,
        "custom": {name: {"min": low, "max": high} for name, (low, high) in sorted(tolerance.custom.items())},
    }


def _custom_metric(ctx: TaskContext[ValidateParams]) -> Callable[[Any, Any], Mapping[str, float]] | None:
    metric = ctx.params.metric
    if metric is None:
        return None
    function = import_attribute(metric.function, ctx.search_path, "validate.metric")
    if not callable(function):
        raise TaskError(f"validate.metric {metric.function} is not a function")
    return function  # type: ignore[no-any-return]


def _onnxruntime_outputs(
    ctx: TaskContext[ValidateParams], feeds_per_sample: list[dict[str, Any]], names: list[str]
) -> list[list[Any]] | str:
    """The graph's outputs on ONNX Runtime's CPU provider, or why it cannot run the graph here."""
    from trtbuild.tasks.onnx_tensors import cpu_session
    from trtbuild.tasks.onnxruntime_errors import feeds_description, onnxruntime_failure

    try:
        session = cpu_session(str(ctx.inputs[build.GRAPH]))
    except Exception as error:
        message = str(error).strip()
        # The CPU provider lacks some low-precision kernels (bf16 Conv, fp8): a limit of this
        # machine's runtime, not a defect of the graph.
        if "NOT_IMPLEMENTED" in message:
            return f"ONNX Runtime (CPU) cannot run this graph: {message.split(':', 3)[-1].strip()[:300]}"
        raise onnxruntime_failure(error, "ONNX Runtime cannot load the cell's graph") from error
    graph_outputs = [o.name for o in session.get_outputs()]
    missing = [name for name in names if name not in graph_outputs]
    if missing:
        raise TaskError(f"the ONNX graph has no outputs named {missing}; it has {graph_outputs}")
    outputs = []
    for index, feeds in enumerate(feeds_per_sample):
        try:
            outputs.append(session.run(names, feeds))
        except Exception as error:  # ORT's exceptions carry the node; a traceback would hide it
            where = f"sample {index + 1} of {len(feeds_per_sample)} ({feeds_description(feeds)})"
            raise onnxruntime_failure(
                error, f"ONNX Runtime could not run the cell's graph on {where}"
            ) from error
    return outputs


def _ordered(outputs: Mapping[str, Any], names: list[str]) -> list[Any]:
    return [outputs[name] for name in names]


def _compare_candidate(
    references: list[list[Any]],
    outputs: list[list[Any]],
    params: ValidateParams,
    metric: Callable[[Any, Any], Mapping[str, float]] | None,
    unusable: Mapping[str, list[int]],
) -> JsonDict:
    """The candidate's metrics per output and its failed gates, on the samples whose reference is
    finite (`unusable`: the others, per output)."""
    from trtbuild.tasks import metrics as M

    names = [t.name for t in params.outputs]
    tolerance = tolerance_document(params.tolerance)
    per_output: JsonDict = {}
    failures: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        pairs = [
            (ref[index], got[index])
            for sample, (ref, got) in enumerate(zip(references, outputs, strict=True))
            if sample not in unusable.get(name, ())
        ]
        if not pairs:  # nothing to compare with: the reference's failure says why
            per_output[name] = {"compared": 0}
            continue
        worst = M.aggregate([M.compare(ref, got) for ref, got in pairs])
        allclose: bool | None = None  # None: no atol/rtol gate was asked for
        if tolerance.get("atol") is not None or tolerance.get("rtol") is not None:
            atol, rtol = tolerance.get("atol") or 0.0, tolerance.get("rtol") or 0.0
            allclose = all(M.within_tolerance(ref, got, atol, rtol) for ref, got in pairs)
        if name in params.classifiers:
            worst.update(M.topk_agreement(pairs))
        if metric is not None:
            worst.update(_custom_values(metric, pairs, name))
        per_output[name] = {**worst, "allclose": allclose, "compared": len(pairs)}
        failures += M.gate(name, worst, allclose, tolerance)
    return {"status": "compared", "outputs": per_output, "passed": not failures, "failures": failures}


def _nonfinite_references(references: list[list[Any]], names: list[str]) -> dict[str, list[int]]:
    """Output name -> the samples whose PyTorch reference holds NaN or Inf."""
    import numpy as np

    found: dict[str, list[int]] = {}
    for sample, outputs in enumerate(references):
        for name, output in zip(names, outputs, strict=True):
            if not np.isfinite(output).all():
                found.setdefault(name, []).append(sample)
    return found


def _reference_failures(
    ctx: TaskContext[ValidateParams],
    unusable: Mapping[str, list[int]],
    shapes: list[dict[str, list[int]]],
    generated: bool,
) -> list[dict[str, Any]]:
    """A NaN/Inf reference fails its samples: nothing can be validated against it, and a metric
    computed around it would look fine. Usually an input the model cannot take (an all-padding
    attention mask, token ids past the vocabulary): say so, and how to generate proper ones."""
    failures = []
    for name, samples in unusable.items():
        # Counted from 1, as the other failures count them ("sample 2 of 3").
        which = "; ".join(f"sample {k + 1} of {len(shapes)} ({_shapes_text(shapes[k])})" for k in samples)
        failures.append(
            {
                "candidate": "reference",
                "output": name,
                "metric": "finite",
                "value": f"the reference (PyTorch) produced NaN/Inf for {which}",
                "threshold": "all finite",
            }
        )
    if unusable and generated:
        ctx.warn(
            "the reference (PyTorch) produced NaN/Inf, so those samples could not be validated: if an "
            "input needs particular values (an attention mask, token ids), declare them with "
            "`values:` under the input (kinds mask, integers, choice, constant, npz)"
        )
    return failures


def _shapes_text(shapes: Mapping[str, list[int]]) -> str:
    return ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items())


def _custom_values(
    metric: Callable[[Any, Any], Mapping[str, float]], pairs: list[tuple[Any, Any]], output: str
) -> dict[str, float]:
    """The user's metric per sample, averaged over samples."""
    totals: dict[str, float] = {}
    for ref, got in pairs:
        try:
            values = metric(ref, got)
            numbers = {str(key): float(value) for key, value in values.items()}
        except Exception as error:  # the user's code
            raise TaskError(
                f"validate.metric failed on output '{output}': {type(error).__name__}: {error}",
                ["it is called as metric(reference, candidate) on numpy arrays and returns {name: number}"],
            ) from error
        for key, value in numbers.items():
            totals[key] = totals.get(key, 0.0) + value / len(pairs)
    return totals


KIND = Validate()
