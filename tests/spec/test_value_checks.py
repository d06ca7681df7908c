"""Inputs' `values` generators: what loads, and the config errors that name the field to fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trtbuild.errors import Problem
from trtbuild.spec.loader import load_spec
from trtbuild.spec.model import Choice, Constant, Integers, Mask, NpzValues, Uniform

Edit = Callable[..., Path]
OneProblem = Callable[[Path], Problem]

INPUT = "dtype: float32}"  # the end of GOOD's only input, on line 5
MASK = "dtype: float32}\n  mask: {shape: [batch, 10], dtype: int64VALUES}"  # the mask on line 6
PROFILE = "max: [32, 3, 224, 224]}"
MASK_PROFILE = "max: [32, 3, 224, 224]}, mask: {min: [1, 10], opt: [8, 10], max: [32, 10]}"


def with_mask(edit_good: Edit, values: str, dtype: str = "int64") -> Path:
    mask = MASK.replace("VALUES", f", {values}" if values else "").replace("int64", dtype)
    return edit_good(INPUT, mask, PROFILE, MASK_PROFILE)


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ("range: [0, 2]", "int64", Integers(0, 2)),  # `range` on an integer input: whole numbers
        ("range: [-1, 1]", "float16", Uniform(-1.0, 1.0)),
        ("values: {kind: mask, valid: [2, 8]}", "int64", Mask((2, 8))),
        ("values: {kind: mask}", "bool", Mask()),
        ("values: {kind: choice, of: [0, 2, 4]}", "int32", Choice((0, 2, 4))),
        ("values: {kind: constant, value: 1}", "float32", Constant(1)),
        ("values: {kind: integers, low: 0, high: 30522}", "int64", Integers(0, 30522)),
        ("", "bool", Choice((False, True))),  # bool's default: both values
    ],
)
def test_values_load(edit_good: Edit, values: str, dtype: str, expected: object) -> None:
    spec = load_spec(with_mask(edit_good, values, dtype))
    assert spec.inputs[1].values == expected


def test_npz_path_is_kept_as_written_and_the_key_defaults_to_the_input(edit_good: Edit) -> None:
    path = with_mask(edit_good, "values: {kind: npz, path: data/../masks.npz}")
    (path.parent / "masks.npz").write_bytes(b"")
    spec = load_spec(path)
    assert spec.inputs[1].values == NpzValues("data/../masks.npz", "mask")


@pytest.mark.parametrize(
    ("values", "dtype", "field", "message"),
    [
        ("values: {kind: choice, of: [0, 1.5]}", "int64", "values.of[1]", "1.5 is not a whole number"),
        ("values: {kind: choice, of: [0, 300]}", "uint8", "values.of[1]", "300 does not fit uint8"),
        ("values: {kind: constant, value: 70000}", "float16", "values.value", "does not fit float16"),
        ("values: {kind: integers, low: 0, high: 129}", "int8", "values.high", "128 does not fit int8"),
        ("values: {kind: uniform, low: 0, high: 1}", "int64", "values", "uniform makes real numbers"),
        ("range: [0, 2]", "bool", "range", "range makes real numbers, but input 'mask' is bool"),
        ("values: {kind: mask, valid: [3, 2]}", "int64", "values.valid", "valid [3, 2] is empty"),
        ("values: {kind: mask, valid: [11, 12]}", "int64", "values.valid[0]", "does not fit a row of 10"),
        ("values: {kind: npz, path: nowhere.npz}", "int64", "values.path", "nowhere.npz does not exist"),
        ("values: {kind: choice}", "int64", "values", "missing required field 'of'"),
        ("values: {kind: mask, of: [1]}", "int64", "values.of", "unknown field 'of'"),
    ],
)
def test_values_that_cannot_be_made_are_config_errors(
    edit_good: Edit, one_problem: OneProblem, values: str, dtype: str, field: str, message: str
) -> None:
    path = with_mask(edit_good, values, dtype)
    problem = one_problem(path)
    assert problem.field_path == f"inputs.mask.{field}"
    assert message in problem.message
    assert problem.location is not None and problem.location.line == 6


def test_a_mask_prefix_longer_than_a_profile_allows(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good(
        INPUT,
        "dtype: float32}\n  mask: {shape: [batch, seq], dtype: int64, values: {kind: mask, valid: [4, 8]}}",
        PROFILE,
        "max: [32, 3, 224, 224]}, mask: {min: [1, 2], opt: [8, 8], max: [32, 16]}",
    )
    problem = one_problem(path)
    assert problem.message == (
        "a valid prefix of at least 4 does not fit a row of 2 (profile 'default' lets 'seq' be as short as 2)"
    )
    assert "at most 2" in problem.hint


def test_range_and_values_together(edit_good: Edit, one_problem: OneProblem) -> None:
    problem = one_problem(with_mask(edit_good, "range: [0, 2], values: {kind: mask}"))
    assert problem.field_path == "inputs.mask.values"
    assert "both `range` and `values`" in problem.message
