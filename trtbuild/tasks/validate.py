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
from trtbuild.tasks import metrics as M
from trtbuild.tasks.base import Derived, JsonDict, TaskContext, TaskKind
from trtbuild.tasks.code import code_of
from trtbuild.tasks.float_environment import float_environment
from trtbuild.tasks.importing import import_attribute
from trtbuild.tasks.onnx_tensors import INTRA_OP_THREADS, Runner, cpu_session
from trtbuild.tasks.onnx_tensors import load as load_onnx
from trtbuild.tasks.onnxruntime_errors import feeds_description, onnxruntime_failure
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
    # 18: the samples and PyTorch outputs come from the reference task (its reference.npz)
    version = 18
    outputs = (OUTPUT,)

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

    def tools(self, params: ValidateParams) -> JsonDict:
        return dict(toolchain.versions(("onnxruntime", "numpy")))

    def run(self, ctx: TaskContext[ValidateParams]) -> JsonDict:
        reference = read_reference(ctx.inputs[REFERENCE])
        feeds_per_sample = reference.feeds
        candidates, skipped = _candidates(ctx, feeds_per_sample)
        report, failures = _compare(ctx, reference, candidates)
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
    environment = float_environment(torch_threads, INTRA_OP_THREADS)
    return {"byte_reproducible": True, "environment": environment}


def _metric(spec: Spec) -> tuple[MetricParams | None, dict[str, Path]]:
    metric = spec.validate.metric
    if metric is None:
        return None, {}
    code = code_of(spec, ("validate", "metric"), metric.partition(":")[0])
    return MetricParams(metric, code.package), code.keyed("metric:")


def _candidates(
    ctx: TaskContext[ValidateParams], feeds_per_sample: list[dict[str, Any]]
) -> tuple[dict[str, list[list[Any]]], dict[str, str]]:
    """Each candidate's outputs per sample, and the candidates that cannot run here, with why."""
    params = ctx.params
    names = [t.name for t in params.outputs]
    candidates: dict[str, list[list[Any]]] = {}
    skipped: dict[str, str] = {}
    onnxruntime_outputs = _onnxruntime_outputs(ctx, feeds_per_sample, names)
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
    unusable = _nonfinite_references(references, [t.name for t in params.outputs])
    failures = _reference_failures(ctx, unusable, report["shapes"], manifest["generated"])
    for candidate, outputs in candidates.items():
        result = _compare_candidate(references, outputs, params, metric, unusable)
        failures += [{"candidate": candidate, **failure} for failure in result["failures"]]
        report["candidates"][candidate] = result
    usable = [f for k, f in enumerate(feeds_per_sample) if not any(k in s for s in unusable.values())]
    overflow = _overflow_scan(ctx, usable)
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


def _overflow_scan(ctx: TaskContext[ValidateParams], feeds_per_sample: list[dict[str, Any]]) -> JsonDict:
    """fp16 / bf16 cells: run the graph once with every tensor materialised in its own type and list
    the tensors where an overflow to Inf/NaN starts.

    The output comparison alone misses these on a CPU: ONNX Runtime computes chains of fp16 ops it
    has no fp16 kernel for in fp32, so an intermediate that a GPU would overflow never does here.
    Every sample is scanned (one at a time, so memory is one sample's activations): overflow depends
    on the values, and the largest inputs are the likeliest to overflow.
    """
    precision = ctx.params.precision
    if precision not in AUTOCAST_PRECISIONS:
        return {"status": "not needed"}
    overflowed: dict[str, None] = {}  # ordered set, in graph order of first overflow
    try:
        model = load_onnx(ctx.inputs[build.GRAPH])
        runner = Runner(model, "cell", precision)
        held = {i.name for i in model.graph.initializer if not _finite(_initializer(i))}
        for feeds in feeds_per_sample:
            overflowed.update(dict.fromkeys(_overflow_starts(model, dict(runner.run(feeds)), held)))
    except TaskError as error:
        ctx.warn(f"the {precision} overflow scan was skipped: {error}")
        return {"status": "skipped", "reason": str(error)}
    return {"status": "checked", "count": len(overflowed), "overflowed": list(overflowed)[:10]}


def _overflow_starts(model: Any, tensors: Mapping[str, Any], held: set[str]) -> list[str]:
    """The fp16/bf16 tensors, in graph order, that a node makes Inf/NaN from finite inputs. An
    infinity the graph holds on purpose (a Constant or an initializer `held`: masked_fill(-inf)
    before a softmax) and what is computed from it are no overflow."""
    import numpy as np

    bfloat16 = ml_dtype("bfloat16")
    broken = held | {name for name, value in tensors.items() if not _finite(value)}
    starts = []
    for node in model.graph.node:
        if node.op_type == "Constant" or any(name in broken for name in node.input):
            continue
        if _saturated_fill(node, tensors):
            continue  # what is computed from it has a broken input, and is skipped too
        for name in node.output:
            value = tensors.get(name)
            low = value is not None and (
                value.dtype == np.float16 or (bfloat16 is not None and value.dtype == bfloat16)
            )
            if low and name in broken:
                starts.append(name)
    return starts


# float32's own extremes (finfo(float32).min, -3.4e38) are fill values, not magnitudes: a mask built
# with them (Hugging Face's causal and padding masks) means "minus infinity", which fp16 says as -inf.
FILL_MAGNITUDE = 1e38


def _saturated_fill(node: Any, tensors: Mapping[str, Any]) -> bool:
    """A Cast whose every Inf comes from a float32 fill value (|x| >= 1e38), not from a number
    past fp16's range: the softmax after it computes the same as with the fp32 fill."""
    import numpy as np

    if node.op_type != "Cast" or not node.input or not node.output:
        return False
    source, result = tensors.get(node.input[0]), tensors.get(node.output[0])
    if source is None or result is None or np.shape(source) != np.shape(result):
        return False
    infinite = ~np.isfinite(np.asarray(result, dtype=np.float32))
    magnitudes = np.abs(np.asarray(source, dtype=np.float64))[infinite]
    return bool(infinite.any()) and bool((magnitudes >= FILL_MAGNITUDE).all())


def _finite(value: Any) -> bool:
    """No Inf/NaN in a float array (bfloat16 included); other arrays always are."""
    import numpy as np

    if value.dtype.kind == "f":  # numpy's own floats: no float32 copy of every activation
        return bool(np.isfinite(value).all())
    bfloat16 = ml_dtype("bfloat16")
    return bfloat16 is None or value.dtype != bfloat16 or bool(np.isfinite(value.astype(np.float32)).all())


def _initializer(tensor: Any) -> Any:
    from onnx import numpy_helper

    return numpy_helper.to_array(tensor)


def ml_dtype(name: str) -> Any:
    try:
        import ml_dtypes

        return getattr(ml_dtypes, name)
    except ImportError:
        return None


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
