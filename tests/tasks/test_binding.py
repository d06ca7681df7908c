"""The rules that bind the config's inputs to forward's parameters (trtbuild/tasks/binding.py)."""

from __future__ import annotations

from typing import Any

from trtbuild.tasks.binding import Binding, BindingProblem, bind


def ordered(x: Any, scale: Any, bias: Any = None) -> None: ...


def bert_like(input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> None: ...


def single(x: Any) -> None: ...


def star(*tensors: Any) -> None: ...


def keywords(x: Any, **more: Any) -> None: ...


def test_names_in_forwards_order_stay_positional_and_exactly_as_before() -> None:
    binding = bind(ordered, ["x", "scale"], "m")
    assert binding == Binding(True, ("x", "scale"), leading=True)
    assert binding.call_arguments({"scale": 2, "x": 1}) == ((1, 2), {})


def test_names_out_of_order_are_passed_in_forwards_order_and_with_gaps_by_keyword() -> None:
    swapped = bind(ordered, ["scale", "x"], "m")
    assert isinstance(swapped, Binding) and swapped.order == ("x", "scale")  # the graph's input order
    assert swapped.call_arguments({"scale": 2, "x": 1}) == ((1, 2), {})
    bert = bind(bert_like, ["input_ids", "token_type_ids"], "m")
    assert isinstance(bert, Binding)
    assert bert.call_arguments({"input_ids": 1, "token_type_ids": 2}) == (
        (),
        {"input_ids": 1, "token_type_ids": 2},
    )


def test_one_input_with_another_name_goes_to_the_one_parameter_quietly() -> None:
    assert bind(single, ["input"], "m") == Binding(False, ("input",))


def test_several_inputs_none_named_like_forwards_go_by_position_and_say_so() -> None:
    binding = bind(ordered, ["a", "b"], "m.forward")
    assert isinstance(binding, Binding) and not binding.by_name
    assert binding.note == "m.forward takes (x, scale): the inputs a, b are fed by position, in that order"
    star_binding = bind(star, ["a", "b"], "m.forward")
    assert isinstance(star_binding, Binding) and "takes (*args)" in star_binding.note


def test_a_misspelt_name_among_right_ones_is_a_problem_naming_it() -> None:
    assert bind(ordered, ["x", "scal"], "m.forward") == [
        BindingProblem("scal", "input 'scal' is not a parameter of m.forward (it takes x, scale, bias)")
    ]


def test_a_required_parameter_left_out_is_a_problem() -> None:
    problems = bind(ordered, ["x"], "m.forward")
    assert problems == [
        BindingProblem(None, "m.forward needs 'scale', which the config does not declare among its inputs")
    ]
    too_few = bind(ordered, ["a"], "m.forward")
    assert isinstance(too_few, list) and "positional parameters (x, scale, bias)" in too_few[0].message


def test_kwargs_take_any_name() -> None:
    binding = bind(keywords, ["x", "extra"], "m")
    assert isinstance(binding, Binding) and binding.call_arguments({"x": 1, "extra": 2}) == (
        (),
        {"x": 1, "extra": 2},
    )
    assert binding.into_kwargs == ("extra",)  # what a failure names when the model refuses it


def test_an_unbound_class_function_skips_self() -> None:
    class Net:
        def forward(self, x: Any, scale: Any) -> None: ...

    assert bind(Net.forward, ["x", "scale"], "Net.forward", unbound=True) == Binding(
        True, ("x", "scale"), leading=True
    )


def keyword_only(x: Any, *, scale: Any) -> None: ...


def test_a_keyword_only_parameter_is_passed_by_keyword() -> None:
    binding = bind(keyword_only, ["x", "scale"], "m")
    assert isinstance(binding, Binding) and not binding.leading
    assert binding.call_arguments({"scale": 2, "x": 1}) == ((), {"x": 1, "scale": 2})
