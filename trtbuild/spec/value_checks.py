"""Checks of the inputs' value generators (`range`, `values`) that JSON Schema cannot express: the
values fit the input's dtype, a mask's valid prefix fits its rows, an .npz file exists.

The arrays inside an .npz are checked before anything runs, by the tasks that read them
(`trtbuild/tasks/values.py`): reading them needs numpy, which loading a config does not import.
"""

from __future__ import annotations

from collections.abc import Iterator

from trtbuild.errors import Problem
from trtbuild.spec.model import (
    Choice,
    Constant,
    FieldPath,
    Integers,
    Mask,
    NpzValues,
    Scalar,
    Spec,
    TensorSpec,
    Uniform,
    is_integral,
)
from trtbuild.spec.semantic import field_problem

# The values each dtype holds: integers (and bool) exactly, floats up to their largest finite value.
_INTEGER_BOUNDS = {
    "bool": (0, 1),
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
_FLOAT_MAX = {"float16": 65504.0, "bfloat16": 3.3895313892515355e38, "float32": 3.4028234663852886e38}


def value_problems(spec: Spec) -> Iterator[Problem]:
    """Every problem of the inputs' `range` / `values` fields."""
    for tensor in spec.inputs:
        base: FieldPath = ("inputs", tensor.name)
        if (*base, "range") in spec.marks and (*base, "values") in spec.marks:
            yield field_problem(
                spec,
                (*base, "values"),
                f"input '{tensor.name}' has both `range` and `values`",
                "keep one: `range: [low, high]` is short for `values: {kind: uniform, low: .., high: ..}`",
                at_key=True,
            )
            continue
        yield from _generator_problems(spec, tensor)


def _fit_reason(value: Scalar, dtype: str) -> str | None:
    """Why `value` cannot be an element of a `dtype` tensor, or None when it can."""
    if dtype in _INTEGER_BOUNDS:
        low, high = _INTEGER_BOUNDS[dtype]
        if isinstance(value, float) and not value.is_integer():
            return f"{value:g} is not a whole number, and the input is {dtype}"
        if not low <= value <= high:
            return f"{value:g} does not fit {dtype} ({low} to {high})"
        return None
    if abs(value) > _FLOAT_MAX[dtype]:
        return f"{value:g} does not fit {dtype} (largest {_FLOAT_MAX[dtype]:g})"
    return None


def _generator_problems(spec: Spec, tensor: TensorSpec) -> Iterator[Problem]:
    values = tensor.values
    from_range = ("inputs", tensor.name, "range") in spec.marks
    path: FieldPath = ("inputs", tensor.name, "range" if from_range else "values")
    if isinstance(values, Uniform | Integers):
        yield from _interval_problems(spec, tensor, values, path, from_range)
    elif isinstance(values, Mask):
        yield from _mask_problems(spec, tensor, values, path)
    elif isinstance(values, Choice):
        for index, value in enumerate(values.of):
            yield from _fit_problems(spec, tensor, value, (*path, "of", index))
    elif isinstance(values, Constant):
        yield from _fit_problems(spec, tensor, values.value, (*path, "value"))
    elif isinstance(values, NpzValues) and not values.resolve(spec.directory).is_file():
        file = values.resolve(spec.directory)
        what = "is a directory, not a file" if file.is_dir() else "does not exist"
        yield field_problem(
            spec,
            (*path, "path"),
            f"{file} {what}",
            f"give the path of an .npz file, relative to the config's directory ({spec.directory})",
        )


def _fit_problems(spec: Spec, tensor: TensorSpec, value: Scalar, path: FieldPath) -> Iterator[Problem]:
    reason = _fit_reason(value, tensor.dtype)
    if reason is not None:
        yield field_problem(spec, path, reason, _fit_hint(tensor.dtype))


def _interval_problems(
    spec: Spec, tensor: TensorSpec, values: Uniform | Integers, path: FieldPath, from_range: bool
) -> Iterator[Problem]:
    """[low, high): not empty, fitting the dtype (real numbers need a float input)."""
    name = "range" if from_range else values.kind
    # `range` on an integer input loads as integers: a uniform here is a bool input's, or written so.
    if tensor.dtype == "bool" or (isinstance(values, Uniform) and is_integral(tensor.dtype)):
        wanted = "{kind: choice, of: [false, true]}" if tensor.dtype == "bool" else "{kind: integers, ..}"
        yield field_problem(
            spec,
            path,
            f"{name} makes {'real' if isinstance(values, Uniform) else 'whole'} numbers, but input "
            f"'{tensor.name}' is {tensor.dtype}",
            f"use `values: {wanted}`",
        )
        return
    ends: tuple[FieldPath, FieldPath] = (
        ((*path, 0), (*path, 1)) if from_range else ((*path, "low"), (*path, "high"))
    )
    if not values.low < values.high:
        yield field_problem(
            spec,
            path,
            f"{name} [{values.low:g}, {values.high:g}) is empty: low must be below high",
            "write it as [low, high], e.g. [0, 1]" if from_range else "set low below high",
        )
        return
    # The largest value made: high itself is never drawn, nor anything above high - 1 for integers.
    top = values.high - 1 if isinstance(values, Integers) else values.high
    yield from _fit_problems(spec, tensor, values.low, ends[0])
    yield from _fit_problems(spec, tensor, top, ends[1])


def _mask_problems(spec: Spec, tensor: TensorSpec, mask: Mask, path: FieldPath) -> Iterator[Problem]:
    if not tensor.shape:
        yield field_problem(
            spec, path, f"a mask has rows along the last axis, but input '{tensor.name}' is a scalar", ""
        )
        return
    if mask.valid is None:
        return
    shortest, longest = mask.valid
    if shortest > longest:
        yield field_problem(
            spec,
            (*path, "valid"),
            f"valid [{shortest}, {longest}] is empty: the shortest prefix is longer than the longest",
            "write it as [shortest, longest]",
        )
        return
    row, where = _shortest_row(spec, tensor)
    if row is not None and shortest > row:
        yield field_problem(
            spec,
            (*path, "valid", 0),
            f"a valid prefix of at least {shortest} does not fit a row of {row} ({where})",
            f"make the shortest prefix at most {row}, so that no row is all padding",
        )


def _shortest_row(spec: Spec, tensor: TensorSpec) -> tuple[int | None, str]:
    """The shortest length the input's last axis can have, and where that comes from."""
    dim = tensor.shape[-1]
    if isinstance(dim, int):
        return dim, f"the last axis of input '{tensor.name}' is {dim}"
    lengths = [
        (profile.shapes[tensor.name].min[-1], profile.name)
        for profile in spec.profiles
        if tensor.name in profile.shapes and profile.shapes[tensor.name].min
    ]
    if not lengths:
        return None, ""
    length, profile = min(lengths)
    return length, f"profile '{profile}' lets '{dim}' be as short as {length}"


def _fit_hint(dtype: str) -> str:
    if dtype == "bool":
        return "a bool input takes false and true (or 0 and 1)"
    if dtype in _INTEGER_BOUNDS:
        low, high = _INTEGER_BOUNDS[dtype]
        return f"give whole numbers from {low} to {high}, or change the input's dtype"
    return "give values the dtype can hold, or change the input's dtype"
