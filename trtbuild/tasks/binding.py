"""How the config's inputs reach the model's `forward`: by name, as a user writes them.

Declared inputs are matched to `forward`'s parameters by name, whatever their order, so a config
listing `input_ids, token_type_ids` can never feed `token_type_ids` into the second parameter
(BERT's `attention_mask`). When no declared name is a parameter (`input` for `forward(self, x)`,
or `forward(*args)`), the inputs go by position in the declared order, and with several of them the
export says so; some names matching and some not is a mistake, reported input by input (`bind`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclass(frozen=True)
class BindingProblem:
    input: str | None  # the declared input it is about, if one
    message: str


@dataclass(frozen=True)
class Binding:
    by_name: bool
    order: tuple[str, ...]  # the inputs in the order the graph takes them: forward's, when by name
    note: str = ""  # said to the user when the binding is not plainly by name
    # By name, and the inputs are forward's leading parameters in that order: positional arguments
    # bind the same way (and keep the exported graph exactly as a positional export made it).
    leading: bool = False
    into_kwargs: tuple[str, ...] = ()  # by name, the inputs no named parameter takes: forward's **kwargs

    def call_arguments(self, feeds: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """(args, kwargs) for `forward`, from values by input name."""
        if self.by_name and not self.leading:
            return (), {name: feeds[name] for name in self.order}
        return tuple(feeds[name] for name in self.order), {}


def bind(
    forward: Callable[..., Any], declared: Sequence[str], owner: str, *, unbound: bool = False
) -> Binding | list[BindingProblem]:
    """The binding of the declared input names to `forward`, or what is wrong with them (one message
    each). `owner` names the model for the messages, e.g. "tinynet:TwoInputNet.forward";
    `unbound`: `forward` is the class's function, whose first parameter is `self`.

    Every declared name a parameter of `forward` (or `forward` takes **kwargs): by name. No declared
    name among them: by position, in the config's order (one input can only go one place; several
    are said). Some names matching and some not: a mistake, named input by input."""
    try:
        parameters = list(inspect.signature(forward).parameters.values())[1 if unbound else 0 :]
    except (TypeError, ValueError):  # a builtin or C extension forward: no signature to read
        return Binding(False, tuple(declared), f"{owner} has no readable signature: inputs fed by position")
    named = [p for p in parameters if p.kind in _NAMED]
    names = {p.name for p in named}
    unknown = [name for name in declared if name not in names]
    if not unknown or any(p.kind == p.VAR_KEYWORD for p in parameters):
        return _by_name(parameters, named, declared, owner)
    if len(unknown) == len(declared):
        return _by_position(parameters, declared, owner)
    accepted = ", ".join(p.name for p in named) or "nothing by name"
    return [
        BindingProblem(name, f"input '{name}' is not a parameter of {owner} (it takes {accepted})")
        for name in unknown
    ]


def _by_name(
    parameters: list[inspect.Parameter], named: list[inspect.Parameter], declared: Sequence[str], owner: str
) -> Binding | list[BindingProblem]:
    missing = [p.name for p in named if p.default is p.empty and p.name not in declared]
    if missing:
        message = f"{owner} needs {_quoted(missing)}, which the config does not declare among its inputs"
        return [BindingProblem(None, message)]
    extra = tuple(name for name in declared if name not in {p.name for p in named})  # into **kwargs
    order = tuple(p.name for p in named if p.name in declared) + extra
    head = parameters[: len(order)]  # keyword-only parameters can only be passed by keyword
    leading = not extra and all(p.kind is p.POSITIONAL_OR_KEYWORD for p in head)
    leading = leading and order == tuple(p.name for p in head)
    return Binding(True, order, leading=leading, into_kwargs=extra)


def _by_position(
    parameters: list[inspect.Parameter], declared: Sequence[str], owner: str
) -> Binding | list[BindingProblem]:
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    takes_args = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    required = [p for p in positional if p.default is p.empty]
    if len(declared) < len(required) or (len(declared) > len(positional) and not takes_args):
        takes = ", ".join(p.name for p in positional) or "no positional inputs"
        message = (
            f"none of the inputs {', '.join(declared)} is a parameter of {owner}, and there are "
            f"{len(declared)} of them for its positional parameters ({takes})"
        )
        return [BindingProblem(name, message) for name in declared]
    note = ""
    if len(declared) > 1:
        takes = ", ".join(p.name for p in positional[: len(declared)]) or "*args"
        note = f"{owner} takes ({takes}): the inputs {', '.join(declared)} are fed by position, in that order"
    return Binding(False, tuple(declared), note)


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)
