"""Generated input values: each input's `values` generator (`TensorSpec.values`) made into an array
of a given shape, for validation, random calibration and the export's example inputs.

Which shapes to make is `sampling.py`'s business; this module only fills them. An input whose
values come from an .npz reads it through the task's file inputs (`npz_files`), so the file's
content is keyed. numpy is imported by the functions that need it: this module is imported at
plan time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import (
    Choice,
    Constant,
    Integers,
    Mask,
    NpzValues,
    Spec,
    TensorSpec,
    Uniform,
    Values,
)
from trtbuild.spec.semantic import field_problem

FILE_PREFIX = "values:"  # a task's file input holding an input's .npz: values:<path as written>
NPZ_HINT = (
    "an input's .npz array has the input's dtype and rank, its fixed sizes, and along each dynamic "
    "axis size 1 (repeated) or at least the largest size a sample takes (the profiles' max)"
)


def npz_files(spec: Spec, inputs: Sequence[TensorSpec] | None = None) -> dict[str, Path]:
    """The .npz files the inputs' values come from, as file inputs of the tasks that generate them."""
    tensors = spec.inputs if inputs is None else inputs
    return {
        npz_input(t.values): t.values.resolve(spec.directory)
        for t in tensors
        if isinstance(t.values, NpzValues)
    }


def npz_input(values: NpzValues) -> str:
    return FILE_PREFIX + values.path


def generated_arrays(
    inputs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]], seed: int, files: Mapping[str, Path]
) -> dict[str, Any]:
    """Seeded arrays with each input's shape (from `shapes`) and dtype, made by its generator."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays: dict[str, Any] = {}
    npz: dict[str, Any] = {}  # file input -> its loaded archive, read once per call
    for tensor in inputs:
        shape = list(shapes[tensor.name])
        values = tensor.values
        if isinstance(values, NpzValues):
            array = npz_array(tensor, values, _archive(npz, files, values), shape)
        else:
            array = _random(values, shape, rng)
        arrays[tensor.name] = as_dtype(array, tensor.dtype)
    return arrays


def _random(values: Values, shape: list[int], rng: Any) -> Any:
    import numpy as np

    if isinstance(values, Uniform):
        return rng.uniform(values.low, values.high, shape).astype(np.float32)
    if isinstance(values, Integers):
        return rng.integers(values.low, values.high, shape)
    if isinstance(values, Mask):
        return mask_array(values, shape, rng)
    if isinstance(values, Choice):
        return np.asarray(values.of)[rng.integers(0, len(values.of), shape)]
    assert isinstance(values, Constant)
    return np.full(shape, values.value)


def mask_array(mask: Mask, shape: list[int], rng: Any) -> Any:
    """Ones for a prefix of each row along the last axis, zeros after it; at least one 1 a row."""
    import numpy as np

    length = shape[-1]
    shortest, longest = mask.valid if mask.valid is not None else (1, length)
    # The config checks keep `shortest` within every row the profiles allow; clip for safety only.
    shortest, longest = min(shortest, length), min(longest, length)
    prefix = rng.integers(shortest, longest + 1, shape[:-1])
    return np.arange(length) < np.expand_dims(prefix, -1)


def as_dtype(array: Any, dtype: str) -> Any:
    """`array` in the input's dtype (bfloat16 through ml_dtypes, which numpy lacks)."""
    if dtype == "bfloat16":
        import ml_dtypes
        import numpy as np

        return np.asarray(array, np.float32).astype(ml_dtypes.bfloat16)
    return array.astype(dtype)


def _archive(loaded: dict[str, Any], files: Mapping[str, Path], values: NpzValues) -> Any:
    import numpy as np

    name = npz_input(values)
    if name not in loaded:
        with np.load(files[name]) as archive:
            loaded[name] = {key: archive[key] for key in archive.files}
    return loaded[name]


def npz_array(tensor: TensorSpec, values: NpzValues, archive: Mapping[str, Any], shape: list[int]) -> Any:
    """The input's array from the .npz, cut to `shape`: its leading part along each axis, or an axis
    of size 1 repeated."""
    import numpy as np

    problems = array_problems(tensor, values, archive, shape)
    if problems:
        raise TaskError(problems[0], [NPZ_HINT])
    array = archive[values.key]
    for axis, size in enumerate(shape):
        part = array.take(np.arange(min(size, array.shape[axis])), axis=axis)
        array = part if part.shape[axis] == size else np.repeat(part, size, axis=axis)
    return array


def npz_problems(
    spec: Spec,
    inputs: Sequence[TensorSpec],
    largest: Mapping[str, Sequence[int]],
    files: Mapping[str, Path],
) -> list[Problem]:
    """Problems of the inputs' .npz arrays, read before anything runs: each must fill its input at
    the `largest` size per axis a sample takes."""
    return [
        field_problem(spec, ("inputs", name, "values", "path"), message, NPZ_HINT)
        for name, message in npz_messages(inputs, largest, files)
    ]


def npz_messages(
    inputs: Sequence[TensorSpec], largest: Mapping[str, Sequence[int]], files: Mapping[str, Path]
) -> list[tuple[str, str]]:
    """(input name, what is wrong) for each input whose .npz array cannot fill `largest`."""
    found: list[tuple[str, str]] = []
    for tensor in inputs:
        values = tensor.values
        if not isinstance(values, NpzValues):
            continue
        import numpy as np  # only for an .npz: a plan of generated inputs imports no numpy

        try:
            with np.load(files[npz_input(values)]) as archive:
                messages = array_problems(tensor, values, archive, largest[tensor.name])
        except Exception as error:  # not an .npz (numpy raises several kinds of error)
            messages = [f"cannot read {values.path} as .npz: {type(error).__name__}: {error}"]
        found += [(tensor.name, message) for message in messages]
    return found


def array_problems(
    tensor: TensorSpec, values: NpzValues, archive: Mapping[str, Any], largest: Sequence[int]
) -> list[str]:
    """What keeps the .npz array from filling the input up to the `largest` size per axis."""
    where = f"array '{values.key}' of {values.path} (input '{tensor.name}')"
    if values.key not in archive:
        return [
            f"{values.path} has no array '{values.key}' for input '{tensor.name}' (it has {sorted(archive)})"
        ]
    array = archive[values.key]
    if array.ndim != len(tensor.shape):
        return [
            f"{where} has rank {array.ndim}, the input has rank {len(tensor.shape)}: {list(tensor.shape)}"
        ]
    problems = []
    if str(array.dtype) != tensor.dtype:
        problems.append(f"{where} is {array.dtype}, the input is {tensor.dtype}")
    for axis, (have, dim, needed) in enumerate(zip(array.shape, tensor.shape, largest, strict=True)):
        if isinstance(dim, int) and have != dim:
            problems.append(f"{where} has {have} along axis {axis}, fixed at {dim} in the input's shape")
        elif have != 1 and have < needed:
            problems.append(f"{where} has {have} along axis {axis} ('{dim}'), a sample takes up to {needed}")
    return problems
