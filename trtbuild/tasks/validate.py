"""validate: PyTorch fp32 reference vs the cell's ONNX graph (ONNX Runtime, CPU) and its engine.

The engine is run only where a GPU its backend supports is present; elsewhere its comparison is
recorded as skipped with the reason, never as passed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild import toolchain
from trtbuild.backends.registry import get_backend
from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import AUTOCAST_PRECISIONS, Cell, ProfileSpec, Spec, TensorSpec, Tolerance
from trtbuild.spec.source import module_search_path
from trtbuild.tasks import build
from trtbuild.tasks import calibration as calibrations
from trtbuild.tasks import metrics as M
from trtbuild.tasks.base import Derived, JsonDict, Planned, TaskContext, TaskKind
from trtbuild.tasks.code import code_identity
from trtbuild.tasks.importing import import_attribute
from trtbuild.tasks.onnx_tensors import Runner
from trtbuild.tasks.onnx_tensors import load as load_onnx
from trtbuild.tasks.params import ModelParams, OutputParams, model_params, output_params, user_code_context
from trtbuild.tasks.precision_record import RECORD, share_failures
from trtbuild.tasks.sampling import random_arrays, sample_shapes
from trtbuild.tasks.torch_model import as_output_list, input_binding, load_model, model_source_problems

NAME = "validate"
OUTPUT = "validation.json"
DATA = "validation-data"  # the input name of validate.data's .npz


@dataclass(frozen=True)
class ValidationData:
    """Real inputs: `batch` rows per compared sample, from validate.data's .npz, or the last
    `holdout` samples of the calibration data."""

    batch: int
    # The calibration source, holding out its last `holdout` samples (None: validate.data's .npz).
    calibration: calibrations.Calibration | None = None

    @property
    def holdout(self) -> int | None:
        return self.calibration.holdout if self.calibration is not None else None


@dataclass(frozen=True)
class MetricParams:
    function: str  # "module:function" returning {name: number}
    package: str | None  # its distribution, when installed; local code is keyed by content


@dataclass(frozen=True)
class ValidateParams:
    samples: int
    seed: int
    precision: str
    tolerance: Tolerance
    classifiers: tuple[str, ...]  # outputs with top-1 / top-5 agreement
    metric: MetricParams | None
    data: ValidationData | None  # None: seeded random inputs inside the profiles
    # What the PyTorch reference and the engine run need.
    model: ModelParams
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[OutputParams, ...]
    profiles: tuple[ProfileSpec, ...]
    backend: str
    targets: tuple[str, ...]
    # The least share of nodes and of weights in the cell's precision (precision.json); None: no gate.
    min_low_precision: float | None = None


class Validate(TaskKind[ValidateParams]):
    name = NAME
    version = 11  # 11: the low-precision share gate (validate.min_low_precision)
    outputs = (OUTPUT,)

    def derive(self, spec: Spec, cell: Cell) -> Derived[ValidateParams]:
        model, files = model_params(spec)
        data, data_files = _validation_data(spec)
        metric, metric_files = _metric(spec)
        params = ValidateParams(
            samples=spec.validate.samples,
            seed=spec.validate.seed,
            precision=cell.precision,
            tolerance=spec.validate.tolerance.get(cell.precision) or Tolerance(),
            classifiers=tuple(o.name for o in spec.outputs if o.classifier),
            metric=metric,
            data=data,
            model=model,
            inputs=spec.inputs,
            outputs=output_params(spec),
            profiles=spec.profiles,
            backend=build.backend_of(spec),
            targets=spec.build.targets,
            min_low_precision=spec.validate.min_low_precision.get(cell.precision),
        )
        return Derived(params, {**files, **data_files, **metric_files}, user_code_context(spec))

    def tools(self, params: ValidateParams) -> JsonDict:
        return dict(toolchain.versions(("torch", "onnxruntime", "numpy")))

    def preflight(self, spec: Spec, tasks: Sequence[Planned[ValidateParams]]) -> list[Problem]:
        return model_source_problems(spec)

    def run(self, ctx: TaskContext[ValidateParams]) -> JsonDict:
        feeds_per_sample = _samples(ctx)
        references = _reference_outputs(ctx, feeds_per_sample)
        candidates, skipped = _candidates(ctx, feeds_per_sample)
        report, failures = _compare(ctx, references, candidates, feeds_per_sample)
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
        }


def _validation_data(spec: Spec) -> tuple[ValidationData | None, dict[str, Path]]:
    validate = spec.validate
    if validate.data is not None:
        return ValidationData(validate.data_batch), {DATA: validate.data}
    if validate.holdout is not None and spec.calibration is not None:
        calibration, files = calibrations.for_spec(spec)
        return ValidationData(validate.data_batch, calibration), dict(files)
    return None, {}


def _metric(spec: Spec) -> tuple[MetricParams | None, dict[str, Path]]:
    metric = spec.validate.metric
    if metric is None:
        return None, {}
    search_path = module_search_path(spec.directory)
    package, files = code_identity(metric.partition(":")[0], search_path, "metric:")
    return MetricParams(metric, package), files


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
    references: list[list[Any]],
    candidates: Mapping[str, list[list[Any]]],
    feeds_per_sample: list[dict[str, Any]],
) -> tuple[JsonDict, list[dict[str, Any]]]:
    """The report of every compared candidate and the overflow scan, and the gate's failures."""
    params = ctx.params
    metric = _custom_metric(ctx)
    report: JsonDict = {
        "precision": params.precision,
        "samples": len(feeds_per_sample),
        "seed": params.seed,
        "inputs": _inputs_origin(params),
        "shapes": [{name: list(a.shape) for name, a in feeds.items()} for feeds in feeds_per_sample],
        "tolerance": tolerance_document(params.tolerance),
        "reference": "torch fp32 CPU",
        "candidates": {},
    }
    failures: list[dict[str, Any]] = []
    for candidate, outputs in candidates.items():
        result = _compare_candidate(references, outputs, params, metric)
        failures += [{"candidate": candidate, **failure} for failure in result["failures"]]
        report["candidates"][candidate] = result
    overflow = _overflow_scan(ctx, feeds_per_sample)
    report["overflow_scan"] = overflow
    if overflow.get("overflowed"):
        failures.append(
            {
                "candidate": "onnxruntime",
                "output": overflow["overflowed"][0],
                "metric": f"{params.precision} overflow",
                "value": f"{overflow['count']} tensor(s) Inf/NaN",
                "threshold": "none",
            }
        )
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


def _samples(ctx: TaskContext[ValidateParams]) -> list[dict[str, Any]]:
    """Input feeds per compared sample: `samples` batches of the user's data, or seeded random
    inputs covering each profile's opt, min and max shapes."""
    params = ctx.params
    if params.data is not None:
        return _data_samples(ctx, params.data)
    return random_samples(params.inputs, params.profiles, params.samples, params.seed)


def random_samples(
    inputs: tuple[TensorSpec, ...], profiles: tuple[ProfileSpec, ...], samples: int, seed: int
) -> list[dict[str, Any]]:
    """Seeded inputs covering each profile's opt, min and max shapes, then random shapes."""
    shapes = sample_shapes(inputs, profiles, samples, seed)
    return [random_arrays(inputs, sample, seed=seed * 100_003 + index) for index, sample in enumerate(shapes)]


def _data_samples(ctx: TaskContext[ValidateParams], data: ValidationData) -> list[dict[str, Any]]:
    params, batch = ctx.params, data.batch
    if data.calibration is not None and data.holdout:  # the samples held out of the calibration data
        everything = data.calibration.load(ctx.inputs, ctx.search_path)
        arrays = calibrations.split_holdout(everything, data.holdout)[1]
    else:
        import numpy as np

        with np.load(ctx.inputs[DATA]) as archive:
            arrays = {t.name: archive[t.name] for t in params.inputs if t.name in archive.files}
    missing = [t.name for t in params.inputs if t.name not in arrays]
    if missing:
        raise TaskError(
            f"the validation data has no arrays for inputs {missing}", ["name the arrays after the inputs"]
        )
    rows = min(len(array) for array in arrays.values())
    count = min(params.samples, rows // batch)
    if count == 0:
        raise TaskError(f"validate.data holds {rows} rows, fewer than one batch of {batch}")
    return [
        {name: array[i * batch : (i + 1) * batch] for name, array in arrays.items()} for i in range(count)
    ]


def _inputs_origin(params: ValidateParams) -> str:
    data = params.data
    if data is None:
        return "seeded random, inside the profiles"
    return f"last {data.holdout} calibration samples" if data.holdout else "validate.data"


def _custom_metric(ctx: TaskContext[ValidateParams]) -> Callable[[Any, Any], Mapping[str, float]] | None:
    metric = ctx.params.metric
    if metric is None:
        return None
    function = import_attribute(metric.function, ctx.search_path, "validate.metric")
    if not callable(function):
        raise TaskError(f"validate.metric {metric.function} is not a function")
    return function  # type: ignore[no-any-return]


def _reference_outputs(
    ctx: TaskContext[ValidateParams], feeds_per_sample: list[dict[str, Any]]
) -> list[list[Any]]:
    import torch

    params = ctx.params
    model = load_model(params.model, ctx.inputs, ctx.search_path)
    binding = input_binding(model, params.model.source, [t.name for t in params.inputs])
    names = [t.name for t in params.outputs]
    references = []
    with torch.inference_mode():
        for feeds in feeds_per_sample:
            args, kwargs = binding.call_arguments({n: torch.from_numpy(a) for n, a in feeds.items()})
            outputs = as_output_list(model(*args, **kwargs), names)
            references.append([out.detach().float().numpy() for out in outputs])
    return references


def _onnxruntime_outputs(
    ctx: TaskContext[ValidateParams], feeds_per_sample: list[dict[str, Any]], names: list[str]
) -> list[list[Any]] | str:
    """The graph's outputs on ONNX Runtime's CPU provider, or why it cannot run the graph here."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # Run the graph as written: ONNX Runtime's optimizer removes fp16 round trips (Cast pairs
    # around ops it computes in fp32), which hides exactly the overflows a GPU engine would hit.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = onnxruntime.InferenceSession(
            str(ctx.inputs[build.GRAPH]), options, providers=["CPUExecutionProvider"]
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


def _overflow_scan(ctx: TaskContext[ValidateParams], feeds_per_sample: list[dict[str, Any]]) -> JsonDict:
    """fp16 / bf16 cells: run the graph once with every tensor materialised in its own type and list
    the tensors that overflow to Inf/NaN.

    The output comparison alone misses these on a CPU: ONNX Runtime computes chains of fp16 ops it
    has no fp16 kernel for in fp32, so an intermediate that a GPU would overflow never does here.
    Every sample is scanned (one at a time, so memory is one sample's activations): overflow depends
    on the values, and the largest inputs are the likeliest to overflow.
    """
    precision = ctx.params.precision
    if precision not in AUTOCAST_PRECISIONS:
        return {"status": "not needed"}
    import numpy as np

    bfloat16 = ml_dtype("bfloat16")
    overflowed: dict[str, None] = {}  # ordered set, in graph order of first overflow
    try:
        runner = Runner(load_onnx(ctx.inputs[build.GRAPH]), "cell", precision)
        for feeds in feeds_per_sample:
            for name, value in runner.run(feeds):
                low = value.dtype == np.float16 or (bfloat16 is not None and value.dtype == bfloat16)
                if low and not np.isfinite(value.astype(np.float32)).all():
                    overflowed[name] = None
    except TaskError as error:
        return {"status": "skipped", "reason": str(error)}
    return {"status": "checked", "count": len(overflowed), "overflowed": list(overflowed)[:10]}


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
) -> JsonDict:
    names = [t.name for t in params.outputs]
    tolerance = tolerance_document(params.tolerance)
    per_output: JsonDict = {}
    failures: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        pairs = [(ref[index], got[index]) for ref, got in zip(references, outputs, strict=True)]
        worst = M.aggregate([M.compare(ref, got) for ref, got in pairs])
        allclose: bool | None = None  # None: no atol/rtol gate was asked for
        if tolerance.get("atol") is not None or tolerance.get("rtol") is not None:
            atol, rtol = tolerance.get("atol") or 0.0, tolerance.get("rtol") or 0.0
            allclose = all(M.within_tolerance(ref, got, atol, rtol) for ref, got in pairs)
        if name in params.classifiers:
            worst.update(M.topk_agreement(pairs))
        if metric is not None:
            worst.update(_custom_values(metric, pairs, name))
        per_output[name] = {**worst, "allclose": allclose}
        failures += M.gate(name, worst, allclose, tolerance)
    return {"status": "compared", "outputs": per_output, "passed": not failures, "failures": failures}


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
