"""The model as an exporter is given it: its declared outputs in order, its inputs in a form the
exporter can map onto the graph's inputs.

The exporters name nodes after the module hierarchy (`/encoder/layer.0/attention/MatMul`), and a
wrapper module's attribute would prefix every name (`/inner/encoder/...`), so the names a user reads
in their own export, or writes in `autocast.exclude_nodes`, would match nothing. Where the model needs
another `forward` for the export, it is set on a shallow copy of the model itself, which shares the
parameters and submodules.
"""

from __future__ import annotations

import inspect
import keyword
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError, raised_at
from trtbuild.tasks.binding import Binding
from trtbuild.tasks.onnxruntime_errors import feeds_description
from trtbuild.tasks.torch_model import as_output_list


@dataclass(frozen=True)
class Traceable:
    model: Any  # torch.nn.Module, returning the declared outputs in order
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    input_names: list[str]  # in the order the graph takes them


def traceable_model(
    model: Any,
    binding: Binding,
    feeds: dict[str, Any],
    outputs: Sequence[str],
    *,
    source: str,
    keywords: bool,
) -> Traceable:
    """The model and its example inputs (tensors by input name) for the exporter, checked against
    the declared outputs on the example. A model returning a dict gets a `forward` returning its
    values in the declared order, so the graph's outputs get the right names.

    `keywords`: the exporter maps keyword inputs onto forward's parameters itself (dynamo). The
    torchscript exporter does not: it matches keywords to forward's named positional parameters only
    and fills the others with their defaults, by position, so `forward(*args, **kwargs)`,
    `forward(**kw)` and keyword-only parameters fail (declared or left at their defaults). For it,
    inputs the binding passes by keyword, or to a forward with parameters beyond the inputs (whose
    defaults it would append), are taken by a `forward` with one positional parameter per input, in
    the graph's order, which calls the model's own `forward` the way the binding does (and the
    validate task's PyTorch reference does)."""
    args, kwargs = binding.call_arguments(feeds)
    result = _example_result(model, binding, feeds, source)
    as_output_list(result, outputs)  # raises a clear error on a count or name mismatch
    reorder = isinstance(result, Mapping)
    fills = _exporter_fills_defaults(type(model).forward, binding.order)
    by_position = (bool(kwargs) or fills) and not keywords
    if not reorder and not by_position:
        return Traceable(model, args, kwargs, list(binding.order))
    import copy
    import types

    exported = copy.copy(model)
    declared = tuple(outputs) if reorder else None
    if by_position:
        forward = _positional_forward(type(model).forward, binding, declared)
        exported.forward = types.MethodType(forward, exported)
        return Traceable(exported, tuple(feeds[name] for name in binding.order), {}, list(binding.order))
    exported.forward = types.MethodType(_reordering_forward(type(model).forward, outputs), exported)
    return Traceable(exported, args, kwargs, list(binding.order))


def _example_result(model: Any, binding: Binding, feeds: dict[str, Any], source: str) -> Any:
    """The model's result on the example, or a TaskError saying how the inputs were passed."""
    import torch

    args, kwargs = binding.call_arguments(feeds)
    try:
        with torch.no_grad():
            return model(*args, **kwargs)
    except Exception as error:  # the user's model, called as the binding says
        # The user's line, not the library's: an IndexError raised in torch.nn.functional.embedding
        # is the user's embedding call. Libraries: the virtualenv, the standard library, trtbuild.
        where = raised_at(error, (sys.prefix, sys.base_prefix, str(Path(__file__).parents[1])))
        if binding.into_kwargs:
            hint = (
                f"hint: {source}.forward takes **kwargs: the inputs {', '.join(binding.into_kwargs)} are "
                "passed to it by keyword; name them after the parameters the model reads them as"
            )
        else:
            hint = (
                "hint: the example inputs have the first profile's opt shapes and each input's values "
                "(`values:`, uniform in [0, 1) by default): if the model needs particular values (token "
                "ids below its vocabulary size, a 0/1 mask), declare them; else fix the model or the shapes"
            )
        raise TaskError(
            f"the PyTorch model failed on the example inputs ({feeds_description(feeds)}): "
            f"{type(error).__name__}: {error}",
            [*where, hint],
        ) from error


def _positional_forward(
    model_forward: Callable[..., Any], binding: Binding, declared: tuple[str, ...] | None
) -> Callable[..., Any]:
    """A `forward(self, <input>, ...)` taking the inputs by position, in `binding.order`, that calls
    `model_forward` with the binding's (args, kwargs); returns the `declared` outputs of a dict."""

    def positional(self: Any, *inputs: Any) -> Any:
        args, kwargs = binding.call_arguments(dict(zip(binding.order, inputs, strict=True)))
        result = model_forward(self, *args, **kwargs)
        return tuple(result[name] for name in declared) if declared is not None else result

    # The torchscript exporter reads forward's signature to place keyword inputs and append the
    # defaults of parameters it was given nothing for: this one has exactly the inputs.
    positional.__signature__ = _positional_signature(binding.order)  # type: ignore[attr-defined]
    return positional


def _exporter_fills_defaults(forward: Callable[..., Any], inputs: Sequence[str]) -> bool:
    """The torchscript exporter would append, by position, the defaults of `forward`'s parameters it
    was given nothing for: keyword-only ones, which `forward` refuses by position, or named ones
    after the inputs, which a decorator may also pass by keyword (transformers 5's BertModel fills
    `use_cache` from its config: "got multiple values for argument 'use_cache'")."""
    try:
        parameters = list(inspect.signature(forward).parameters.values())[1:]  # after self
    except (TypeError, ValueError):  # no readable signature: the exporter reads none either
        return False
    return any(
        p.kind is inspect.Parameter.KEYWORD_ONLY
        or (p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name not in inputs)
        for p in parameters
    )


def _reordering_forward(model_forward: Callable[..., Any], outputs: Sequence[str]) -> Callable[..., Any]:
    import functools

    @functools.wraps(model_forward)  # the signature the exporters read to map keyword inputs
    def declared_outputs(self: Any, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        result = model_forward(self, *args, **kwargs)
        return tuple(result[name] for name in outputs)

    return declared_outputs


def _positional_signature(names: Sequence[str]) -> inspect.Signature:
    """(self, name, ...), or (self, *inputs) when a name is not a Python identifier (a config may
    name an input `input.1` for a forward taking **kwargs)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    if all(name.isidentifier() and name != "self" and not keyword.iskeyword(name) for name in names):
        parameters = [inspect.Parameter(name, kind) for name in names]
    else:
        parameters = [inspect.Parameter("inputs", inspect.Parameter.VAR_POSITIONAL)]
    return inspect.Signature([inspect.Parameter("self", kind), *parameters])
