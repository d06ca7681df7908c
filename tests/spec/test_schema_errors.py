"""Schema violations: one problem each, at the right line, saying what was expected and what to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trtbuild.errors import Problem

Edit = Callable[..., Path]
OneProblem = Callable[[Path], Problem]


def test_unknown_field_points_at_the_key(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("export: {opset: 17, exporter: torchscript}", "export: {opsett: 17}")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:7:10"
    assert problem.field_path == "export.opsett"
    assert problem.message == "unknown field 'opsett'"
    assert "did you mean 'opset'?" in problem.hint
    assert "opset, exporter" in problem.hint


def test_wrong_type(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("opset: 17", 'opset: "seventeen"')
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:7:17"
    assert problem.field_path == "export.opset"
    assert problem.message == "expected an integer, found string 'seventeen'"
    assert problem.hint


def test_quoted_number_hint(edit_good: Edit, one_problem: OneProblem) -> None:
    problem = one_problem(edit_good("opset: 17", 'opset: "17"'))
    assert "remove the quotes" in problem.hint


def test_enum_lists_allowed_values(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("exporter: torchscript", "exporter: torchscrpt")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:7:31"
    assert "'torchscript', 'dynamo'" in problem.message
    assert "did you mean 'torchscript'?" in problem.hint


def test_out_of_range(edit_good: Edit, one_problem: OneProblem) -> None:
    problem = one_problem(edit_good("opset: 17", "opset: 30"))
    assert problem.message == "expected an integer from 7 to 23, found 30"


def test_misspelt_required_field_is_one_problem(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("  name: demo\n", "  nmae: demo\n")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:2:3"
    assert "did you mean 'name'?" in problem.hint


def test_missing_required_field(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("  name: demo\n", "")
    problem = one_problem(path)
    assert problem.message == "missing required field 'name'"
    assert problem.field_path == "model"
    assert str(problem.location) == f"{path}:2:3"


def test_bad_dim_picks_the_matching_alternative(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("shape: [batch, 3", "shape: [0, 3")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:5:19"
    assert problem.field_path == "inputs.input.shape[0]"
    assert problem.message == "expected an integer >= 1, found 0"


def test_outputs_of_wrong_type(edit_good: Edit, one_problem: OneProblem) -> None:
    problem = one_problem(edit_good("outputs: [logits]", "outputs: logits"))
    assert problem.message == "expected a list or a mapping, found string 'logits'"


def test_unknown_field_inside_an_alternative(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("outputs: [logits]", "outputs: {logits: {shap: [batch]}}")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:6:20"
    assert problem.message == "unknown field 'shap'"


def test_unknown_precision(edit_good: Edit, one_problem: OneProblem) -> None:
    problem = one_problem(edit_good("outputs: [logits]", "outputs: [logits]\nprecision: fp64"))
    assert problem.message == "expected one of 'fp32', 'fp16', 'bf16', 'int8', 'fp8', found string 'fp64'"


def test_bad_workspace(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("outputs: [logits]", "outputs: [logits]\nbuild: {workspace: 4 gigs}")
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:7:20"
    assert "'4GiB'" in problem.message and "found string '4 gigs'" in problem.message


def test_yes_is_not_a_boolean(edit_good: Edit, one_problem: OneProblem) -> None:
    problem = one_problem(edit_good("outputs: [logits]", "outputs: [logits]\nsimplify: yes"))
    assert problem.message == "expected a boolean (true or false), found string 'yes'"


def test_duplicate_list_item(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("outputs: [logits]", "outputs: [logits, logits]")
    problem = one_problem(path)
    assert problem.field_path == "outputs[1]"
    assert str(problem.location) == f"{path}:6:19"


def test_several_mistakes_are_all_reported(
    edit_good: Edit, all_problems: Callable[[Path], list[Problem]]
) -> None:
    path = edit_good(
        "opset: 17", "opset: x", "samples: 4", "samples: 0", "  name: demo", "  name: demo\n  colour: red"
    )
    problems = all_problems(path)
    assert [p.location.line for p in problems if p.location] == [3, 8, 11]


def test_left_out_level_is_one_problem(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good(
        "  input: {shape: [batch, 3, 224, 224], dtype: float32}",
        "  shape: [batch, 3, 224, 224]\n  dtype: float32",
        "  default: {input: {min: [1, 3, 224, 224], opt: [8, 3, 224, 224], max: [32, 3, 224, 224]}}\n",
        "",
        "profiles:\n",
        "",
    )
    problem = one_problem(path)
    assert str(problem.location) == f"{path}:5:3"
    assert problem.message == "'shape', 'dtype' are fields of each entry of inputs, not an entry name"
    assert "put the fields under a name" in problem.hint


def test_low_precision_gate_names_no_fp32_and_is_a_share(edit_good: Edit, one_problem: OneProblem) -> None:
    path = edit_good("validate: {samples: 4,", "validate: {min_low_precision: {fp32: 0.5}, samples: 4,")
    problem = one_problem(path)
    assert problem.field_path == "validate.min_low_precision.fp32"
    assert "fp16, bf16, int8, fp8" in problem.hint
    problem = one_problem(
        edit_good("validate: {samples: 4,", "validate: {min_low_precision: 1.5, samples: 4,")
    )
    assert problem.message == "expected a number from 0 to 1, found 1.5"
