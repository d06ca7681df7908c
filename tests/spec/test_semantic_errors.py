"""Checks beyond the schema: profiles against inputs, symbolic dims, the model source, the checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trtbuild.errors import Problem
from trtbuild.spec.loader import load_spec

Edit = Callable[..., Path]
OneProblem = Callable[[Path], Problem]

INPUT_LINE = "  input: {shape: [batch, 3, 224, 224], dtype: float32}"
MASK_INPUT = INPUT_LINE + "\n  mask: {shape: [batch, 10], dtype: bool}"
PROFILE_END = "max: [32, 3, 224, 224]}"


def test_min_greater_than_max(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("min: [1, 3", "min: [64, 3")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:9:27"
    assert problem.field_path == "profiles.default.input.min[0]"
    assert "64/8/32" in problem.message and "min <= opt <= max" in problem.message


def test_dynamic_input_missing_from_profile(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good(INPUT_LINE, MASK_INPUT)  # the profile is now on line 10
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:10:3"
    assert "'default'" in problem.message and "'mask'" in problem.message
    # A ready-to-paste entry, reusing the sizes the profile already gives 'batch'.
    assert "mask: {min: [1, 10], opt: [8, 10], max: [32, 10]}" in problem.hint


def test_dynamic_input_without_any_profile(edit_good: Edit, one_problem: OneProblem) -> None:
    profiles = "profiles:\n  default: {input: {min: [1, 3, 224, 224], opt: [8, 3, 224, 224], " + PROFILE_END
    path = edit_good(profiles + "}\n", "")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:5:18"
    assert "no `profiles`" in problem.message
    assert "profiles:" in problem.hint and "input: {min: [1, 3, 224, 224]" in problem.hint


def test_rank_mismatch(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("min: [1, 3, 224, 224]", "min: [1, 3, 224]")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:9:26"
    assert problem.message == "input 'input' has 4 dims ([batch, 3, 224, 224]) but min has 3"


def test_static_dim_mismatch(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("opt: [8, 3, 224, 224]", "opt: [8, 4, 224, 224]")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:9:53"
    assert problem.field_path == "profiles.default.input.opt[1]"
    assert "fixed at 3" in problem.message


def test_inconsistent_symbolic_dim_across_inputs(edit_good: Edit, one_problem: OneProblem) -> None:
    mask_profile = PROFILE_END + ", mask: {min: [1, 10], opt: [4, 10], max: [32, 10]}"
    path = edit_good(INPUT_LINE, MASK_INPUT, PROFILE_END, mask_profile)
    problem = one_problem(path)
    assert problem.location is not None and problem.location.line == 10
    assert problem.field_path == "profiles.default.mask.min"
    assert "'batch'" in problem.message and "1/4/32" in problem.message and "1/8/32" in problem.message


def test_consistent_symbolic_dims_load(edit_good: Edit) -> None:
    mask_profile = PROFILE_END + ", mask: {min: [1, 10], opt: [8, 10], max: [32, 10]}"
    spec = load_spec(edit_good(INPUT_LINE, MASK_INPUT, PROFILE_END, mask_profile))
    assert set(spec.profiles[0].shapes) == {"input", "mask"}


def test_profile_names_unknown_input(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("default: {input:", "default: {inptu:")
    problem = one_problem(path)  # not also "'input' is missing": that is the same mistake
    assert str(problem.location) == f"{path}:9:13"
    assert "did you mean 'input'?" in problem.hint


def test_output_dim_must_come_from_an_input(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("outputs: [logits]", "outputs: {logits: {shape: [btch, 10]}}")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:6:28"
    assert "did you mean 'batch'?" in problem.hint


def test_empty_range(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("dtype: float32}", "dtype: float32, range: [1, 0]}")
    problem = one_problem(path)
    assert problem.field_path == "inputs.input.range"
    assert str(problem.location) == f"{path}:5:63"


def test_unimportable_model_source(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("json:JSONDecoder", "nonexistent.mod:Net")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:3:11"
    assert problem.field_path == "model.source"
    assert problem.message == "cannot import 'nonexistent.mod': no module named 'nonexistent'"
    assert "install" in problem.hint and "next to the config" in problem.hint


def test_missing_submodule_suggests_a_sibling(edit_good: Edit, one_problem: OneProblem) -> None:
    problem = one_problem(edit_good("json:JSONDecoder", "json.decodr:JSONDecoder"))
    assert "did you mean 'json.decoder'?" in problem.hint


def test_model_file_next_to_the_config(edit_good: Edit) -> None:
    path = edit_good("json:JSONDecoder", "localnet_for_spec_test:build")
    (path.parent / "localnet_for_spec_test.py").write_text("def build():\n    return None\n")
    assert load_spec(path).model.module == "localnet_for_spec_test"


def test_missing_checkpoint(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("  source: json:JSONDecoder\n", "  source: json:JSONDecoder\n  checkpoint: weights.pt\n")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:4:15"
    assert str(path.parent / "weights.pt") in problem.message


def test_output_named_like_an_input(edit_good: Edit, one_problem: OneProblem) -> None:
    problem = one_problem(edit_good("outputs: [logits]", "outputs: [input]"))
    assert problem.field_path == "outputs[0]"
