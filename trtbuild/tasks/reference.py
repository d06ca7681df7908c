"""reference: the validation samples and the PyTorch fp32 model's outputs on them, once per model.

Every precision cell of a model is compared against the same samples and the same fp32 outputs, so
they are a task of their own, shared like the export: its params are exactly what decides the
samples and the model's outputs (the model, its inputs and outputs, the profiles the samples are
drawn from, their count and seed, the validation data), nothing of a cell. Validation then needs no
PyTorch at all. The output, `reference.npz`, keeps each sample's arrays in their dtype and order.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild import toolchain
from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import Cell, ProfileSpec, Spec, TensorSpec
from trtbuild.tasks import calibration as calibrations
from trtbuild.tasks.base import Derived, JsonDict, Planned, TaskContext, TaskKind
from trtbuild.tasks.params import ModelParams, model_params, user_code_context
from trtbuild.tasks.sampling import points_not_sampled, sample_shapes
from trtbuild.tasks.values import generated_arrays, npz_files, npz_problems

NAME = "reference"
OUTPUT = "reference.npz"
DATA = "validation-data"  # the input name of validate.data's .npz
MANIFEST = "manifest"  # the archive's JSON entry: names per sample, seed, where the inputs come from
# A zip's entries carry a modification time; a fixed one keeps the archive a function of its arrays.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


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
class ReferenceParams:
    model: ModelParams
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]  # the declared outputs, in order (their declared shapes change nothing here)
    profiles: tuple[ProfileSpec, ...]  # where seeded samples are drawn
    samples: int
    seed: int
    data: ValidationData | None  # None: seeded random inputs inside the profiles


@dataclass(frozen=True)
class ReferenceData:
    """reference.npz read back: the feeds per sample and the PyTorch outputs per sample."""

    feeds: list[dict[str, Any]]
    outputs: list[list[Any]]
    manifest: JsonDict


class Reference(TaskKind[ReferenceParams]):
    name = NAME
    version = 2  # 2: the installed distributions the model's local code imports, by version
    outputs = (OUTPUT,)

    def derive(self, spec: Spec, cell: Cell) -> Derived[ReferenceParams]:
        model, files = model_params(spec)
        data, data_files = _validation_data(spec)
        params = ReferenceParams(
            model=model,
            inputs=spec.inputs,
            outputs=tuple(o.name for o in spec.outputs),
            profiles=spec.profiles,
            samples=spec.validate.samples,
            seed=spec.validate.seed,
            data=data,
        )
        return Derived(params, {**files, **data_files, **npz_files(spec)}, user_code_context(spec))

    def cost(self, params: ReferenceParams) -> float:
        return 10.0

    def tools(self, params: ReferenceParams) -> JsonDict:
        return dict(toolchain.versions(("torch", "numpy")))

    def preflight(self, spec: Spec, tasks: Sequence[Planned[ReferenceParams]]) -> list[Problem]:
        from trtbuild.tasks.torch_model import model_source_problems

        problems = model_source_problems(spec)
        for task in tasks:  # the .npz arrays must fill every shape the profiles allow
            largest = largest_shapes(task.params.inputs, task.params.profiles)
            problems += [
                p for p in npz_problems(spec, task.params.inputs, largest, task.files) if p not in problems
            ]
        return problems

    def run(self, ctx: TaskContext[ReferenceParams]) -> JsonDict:
        import torch

        params = ctx.params
        feeds_per_sample = _samples(ctx)
        outputs = _reference_outputs(ctx, feeds_per_sample)
        threads = torch.get_num_threads()
        manifest = {
            "inputs": [list(feeds) for feeds in feeds_per_sample],
            "outputs": list(params.outputs),
            "seed": params.seed,
            "origin": _inputs_origin(params),
            "generated": params.data is None,
            "torch_threads": threads,
        }
        write_reference(ctx.output(OUTPUT), feeds_per_sample, outputs, manifest)
        # The outputs' last bits follow torch's thread count and the CPU (float_environment.py).
        from trtbuild.tasks.float_environment import float_environment
        from trtbuild.tasks.onnx_tensors import INTRA_OP_THREADS

        environment = float_environment(threads, INTRA_OP_THREADS)
        return {
            "samples": len(feeds_per_sample),
            "reproducibility": {"byte_reproducible": True, "environment": environment},
        }


def write_reference(
    path: Path, feeds: list[dict[str, Any]], outputs: list[list[Any]], manifest: JsonDict
) -> None:
    """An .npz (uncompressed: these are floats) whose bytes are a function of the arrays alone:
    `numpy.savez` stamps each entry with the current time."""
    import zipfile  # it loads shutil, bz2 and lzma: not on a no-op's path

    import numpy as np

    arrays: dict[str, Any] = {MANIFEST: np.array(json.dumps(manifest, sort_keys=True))}
    for index, (sample, result) in enumerate(zip(feeds, outputs, strict=True)):
        arrays.update({f"input.{index}.{k}": array for k, array in enumerate(sample.values())})
        arrays.update({f"output.{index}.{k}": array for k, array in enumerate(result)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            with archive.open(info, "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asarray(array), allow_pickle=False)


def read_reference(path: Path) -> ReferenceData:
    import numpy as np

    with np.load(path, allow_pickle=False) as archive:
        manifest = json.loads(archive[MANIFEST].item())
        feeds = [
            {name: archive[f"input.{index}.{k}"] for k, name in enumerate(names)}
            for index, names in enumerate(manifest["inputs"])
        ]
        outputs = [
            [archive[f"output.{index}.{k}"] for k in range(len(manifest["outputs"]))]
            for index in range(len(feeds))
        ]
    return ReferenceData(feeds, outputs, manifest)


def _validation_data(spec: Spec) -> tuple[ValidationData | None, dict[str, Path]]:
    validate = spec.validate
    if validate.data is not None:
        return ValidationData(validate.data_batch), {DATA: validate.data}
    if validate.holdout is not None and spec.calibration is not None:
        calibration, files = calibrations.for_spec(spec)
        return ValidationData(validate.data_batch, calibration), dict(files)
    return None, {}


def _samples(ctx: TaskContext[ReferenceParams]) -> list[dict[str, Any]]:
    """Input feeds per compared sample: `samples` batches of the user's data, or seeded random
    inputs covering each profile's opt, min and max shapes."""
    params = ctx.params
    if params.data is not None:
        return _data_samples(ctx, params.data)
    missed, needed = points_not_sampled(params.inputs, params.profiles, params.samples)
    if missed:
        # Never silently less than asked: a dim that is never moved is a dim never validated.
        ctx.warn(
            f"validate.samples: {params.samples} leaves out {len(missed)} of the shape sets that "
            "move each dynamic dim on its own: "
            + ", ".join(
                f"profile '{p.profile}' {p.dim} at its {p.bound} {p.sizes[p.dim or '']}" for p in missed
            )
            + f"; set validate.samples: {needed} to compare them all"
        )
    return random_samples(params.inputs, params.profiles, params.samples, params.seed, ctx.inputs)


def random_samples(
    inputs: tuple[TensorSpec, ...],
    profiles: tuple[ProfileSpec, ...],
    samples: int,
    seed: int,
    files: Mapping[str, Path],
) -> list[dict[str, Any]]:
    """Seeded inputs at each profile's opt shapes and each dynamic dim alone at its min and max,
    then random shapes, with values made by each input's generator (`files`: the task's, for
    inputs read from an .npz)."""
    shapes = sample_shapes(inputs, profiles, samples, seed)
    return [
        generated_arrays(inputs, sample, seed * 100_003 + index, files) for index, sample in enumerate(shapes)
    ]


def largest_shapes(inputs: Sequence[TensorSpec], profiles: Sequence[ProfileSpec]) -> dict[str, list[int]]:
    """Each input's largest size per axis that a validation sample can take."""
    return {
        tensor.name: [
            dim if isinstance(dim, int) else max(p.shapes[tensor.name].max[axis] for p in profiles)
            for axis, dim in enumerate(tensor.shape)
        ]
        for tensor in inputs
    }


def _data_samples(ctx: TaskContext[ReferenceParams], data: ValidationData) -> list[dict[str, Any]]:
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


def _inputs_origin(params: ReferenceParams) -> str:
    data = params.data
    if data is None:
        return "seeded, inside the profiles, made by each input's values"
    return f"last {data.holdout} calibration samples" if data.holdout else "validate.data"


def _reference_outputs(
    ctx: TaskContext[ReferenceParams], feeds_per_sample: list[dict[str, Any]]
) -> list[list[Any]]:
    import torch

    from trtbuild.tasks.onnxruntime_errors import feeds_description
    from trtbuild.tasks.torch_model import as_output_list, input_binding, load_model

    params = ctx.params
    model = load_model(params.model, ctx.inputs, ctx.search_path)
    binding = input_binding(model, params.model.source, [t.name for t in params.inputs])
    names = list(params.outputs)
    references = []
    # The model's own warnings (torch's "nested tensors are in prototype stage", say) were shown at
    # export already; repeated here they are noise in the middle of the progress lines.
    with torch.inference_mode(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for index, feeds in enumerate(feeds_per_sample):
            args, kwargs = binding.call_arguments({n: torch.from_numpy(a) for n, a in feeds.items()})
            try:
                result = model(*args, **kwargs)
            except Exception as error:  # the user's model, on a shape the profiles allow
                where = f"sample {index + 1} of {len(feeds_per_sample)} ({feeds_description(feeds)})"
                raise TaskError(
                    f"the PyTorch model failed on {where}: {type(error).__name__}: {error}",
                    [
                        "hint: the profiles allow these shapes, so the model must take them: fix the "
                        "model or narrow the profiles"
                    ],
                ) from error
            outputs = as_output_list(result, names)
            references.append([out.detach().float().numpy() for out in outputs])
    for warning in caught:
        ctx.logger.debug("%s: the PyTorch reference warned: %s", ctx.task_id, warning.message)
    return references


KIND = Reference()
