"""Profiles by dim name: expanded to shapes per input at load time, and their mistakes, with lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trtbuild.errors import Problem
from trtbuild.spec.loader import load_spec
from trtbuild.spec.model import ShapeRange

Write = Callable[..., Path]
OneProblem = Callable[[Path], Problem]

# Profiles start on line 8: the first profile is line 8, the second line 9.
HEAD = """\
model: {name: demo, source: "json:JSONDecoder"}
inputs:
  ids: {shape: [batch, seq], dtype: int64}
  hidden: {shape: [batch, seq, 8]}
  scale: {shape: [1]}
outputs: [y]
profiles:
"""


def test_a_profile_by_dim_name_is_its_expansion_by_input_name(write_config: Write) -> None:
    by_dim = load_spec(
        write_config(
            HEAD
            + "  short: {batch: [1, 4, 8], seq: [1, 16, 32]}\n"
            + "  long: {seq: {min: 32, opt: 64, max: 128}, batch: [1, 1, 2]}\n",
            "by_dim.yaml",
        )
    )
    by_input = load_spec(
        write_config(
            HEAD
            + "  short:\n"
            + "    ids: {min: [1, 1], opt: [4, 16], max: [8, 32]}\n"
            + "    hidden: {min: [1, 1, 8], opt: [4, 16, 8], max: [8, 32, 8]}\n"
            + "  long:\n"
            + "    hidden: {min: [1, 32, 8], opt: [1, 64, 8], max: [2, 128, 8]}\n"
            + "    ids: {min: [1, 32], opt: [1, 64], max: [2, 128]}\n"
            + "    scale: {min: [1], opt: [1], max: [1]}\n",
            "by_input.yaml",
        )
    )
    assert by_dim.profiles == by_input.profiles
    short = by_dim.profiles[0].shapes
    assert short["hidden"] == ShapeRange(min=(1, 1, 8), opt=(4, 16, 8), max=(8, 32, 8))  # fixed axis as-is
    # An input of fixed shape is in every profile, as TensorRT takes it, whichever way it is written.
    assert short["scale"] == by_input.profiles[0].shapes["scale"] == ShapeRange((1,), (1,), (1,))


def test_a_dim_no_input_uses(write_config: Write, one_problem: OneProblem) -> None:
    path = write_config(HEAD + "  short: {batch: [1, 4, 8], seq: [1, 16, 32], sqe: [1, 2, 3]}\n")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:8:47"
    assert problem.field_path == "profiles.short.sqe"
    assert problem.message == "profile 'short' names 'sqe', which is no dim of any input"
    assert problem.hint == "did you mean 'seq'? the inputs' dims: batch, seq"


def test_a_misspelt_dim_is_one_mistake(write_config: Write, one_problem: OneProblem) -> None:
    problem = one_problem(write_config(HEAD + "  short: {batch: [1, 4, 8], sqe: [1, 16, 32]}\n"))
    assert "names 'sqe'" in problem.message  # not also "no sizes for dim 'seq'"


def test_a_dim_missing_from_a_profile(write_config: Write, one_problem: OneProblem) -> None:
    path = write_config(HEAD + "  short: {batch: [1, 4, 8], seq: [1, 16, 32]}\n  long: {batch: [1, 4, 8]}\n")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:9:3"
    assert problem.message == (
        "profile 'long' has no sizes for dim 'seq' (axis 1 of 'ids', axis 1 of 'hidden')"
    )
    assert problem.hint == "add `seq: [min, opt, max]` under profiles.long"


def test_sizes_out_of_order(write_config: Write, all_problems: Callable[[Path], list[Problem]]) -> None:
    path = write_config(HEAD + "  short: {batch: [8, 4, 1], seq: {min: 1, opt: 64, max: 32}}\n")
    problems = all_problems(path)
    assert [(str(p.location), p.field_path) for p in problems] == [
        (f"{path}:8:19", "profiles.short.batch[0]"),
        (f"{path}:8:48", "profiles.short.seq.opt"),
    ]
    assert problems[0].message == "min/opt/max of dim 'batch' are 8/4/1: need min <= opt <= max"


def test_a_profile_written_both_ways(write_config: Write, one_problem: OneProblem) -> None:
    path = write_config(
        HEAD
        + "  short:\n"
        + "    batch: [1, 4, 8]\n"
        + "    seq: [1, 16, 32]\n"
        + "    ids: {min: [1, 1], opt: [4, 16], max: [8, 32]}\n"
    )
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:8:3"
    assert problem.message == (
        "profile 'short' gives sizes by dim name (batch, seq) and shapes by input name (ids): "
        "a profile is written one way"
    )


def test_profiles_may_each_choose_their_way(write_config: Write) -> None:
    spec = load_spec(
        write_config(
            HEAD
            + "  short: {batch: [1, 4, 8], seq: [1, 16, 32]}\n"
            + "  exact:\n"
            + "    ids: {min: [2, 2], opt: [2, 2], max: [2, 2]}\n"
            + "    hidden: {min: [2, 2, 8], opt: [2, 2, 8], max: [2, 2, 8]}\n"
        )
    )
    assert [profile.name for profile in spec.profiles] == ["short", "exact"]


def test_sizes_and_shapes_in_one_entry(write_config: Write, one_problem: OneProblem) -> None:
    path = write_config(HEAD + "  short: {batch: [1, 4, 8], seq: {min: 1, opt: [16], max: 32}}\n")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:8:34"
    assert problem.message == "'seq' mixes shapes and sizes: opt a list, min/max a number"


def test_an_input_given_sizes(write_config: Write, one_problem: OneProblem) -> None:
    path = write_config(HEAD + "  short: {ids: [1, 4, 8]}\n")
    problem = one_problem(path)  # not also "no sizes for dim 'batch'", "... 'seq'"
    assert str(problem.location) == f"{path}:8:11"
    assert problem.message == "profile 'short' gives input 'ids' the sizes [1, 4, 8]"
    assert problem.hint.endswith("or name its dims instead: batch, seq")


def test_the_input_name_left_out(write_config: Write, one_problem: OneProblem) -> None:
    # Three sizes per list, as for a rank-3 input, pass the schema as sizes of dims named min, opt, max.
    path = write_config(HEAD + "  short: {min: [1, 1, 8], opt: [4, 16, 8], max: [8, 32, 8]}\n")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:8:11"
    assert problem.message.startswith("'min', 'opt', 'max' are fields of an input's entry in profile 'short'")


def test_the_input_name_left_out_of_a_rank_2_input(write_config: Write, one_problem: OneProblem) -> None:
    path = write_config(HEAD + "  short: {min: [1, 1], opt: [4, 16], max: [8, 32]}\n")
    problem = one_problem(path)  # the schema's anyOf, not "expected exactly 3 items" three times
    assert str(problem.location) == f"{path}:8:11"
    assert problem.message.startswith("'min', 'opt', 'max' are fields of each entry of profiles.short")


def test_a_dim_needs_three_sizes(write_config: Write, one_problem: OneProblem) -> None:
    path = write_config(HEAD + "  short: {batch: [1, 4], seq: [1, 16, 32]}\n")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:8:18"
    assert problem.message == "expected exactly 3 items, found 2"
    assert "[min, opt, max]" in problem.hint


def test_a_matrix_axis_over_a_dims_sizes(write_config: Write, one_problem: OneProblem) -> None:
    path = write_config(
        HEAD
        + "  short: {batch: [1, 4, 8], seq: [1, 16, 32]}\n"
        + "matrix:\n"
        + "  profiles.short.seq: [[1, 16, 32], [32, 16, 1]]\n"
    )
    problem = one_problem(path)  # the second cell's sizes, at the line of the matrix that wrote them
    assert problem.location is not None and problem.location.line == 10
    assert problem.message.startswith("cell ") and "min/opt/max of dim 'seq' are 32/16/1" in problem.message


def test_no_profiles_suggests_both_forms(write_config: Write, one_problem: OneProblem) -> None:
    problem = one_problem(write_config(HEAD.removesuffix("profiles:\n")))
    assert "ids: {min: [1, 1], opt: [8, 8], max: [32, 32]}" in problem.hint
    assert "or, by dim name: profiles: {default: {batch: [1, 8, 32], seq: [1, 8, 32]}}" in problem.hint
