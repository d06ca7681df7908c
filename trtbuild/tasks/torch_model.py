"""Instantiate the user's PyTorch model from `module:attr`, kwargs and an optional checkpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import Spec
from trtbuild.spec.source import module_search_path
from trtbuild.tasks.binding import Binding, bind
from trtbuild.tasks.importing import import_attribute
from trtbuild.tasks.params import ModelParams


def load_model(
    model: ModelParams, inputs: Mapping[str, Path], search_path: Sequence[str]
) -> Any:  # torch.nn.Module
    """The model in eval mode on the CPU, in fp32, with its checkpoint loaded when one is given."""
    import torch

    factory = import_attribute(model.source, search_path, "model.source")
    # A model without a checkpoint is randomly initialised: seed the generator so that export and
    # validate (separate tasks, maybe separate processes) instantiate the very same weights.
    torch.manual_seed(0)
    try:
        module = factory(**model.kwargs)
    except Exception as error:
        raise TaskError(
            f"calling {model.source}(**model.kwargs) failed: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(module, torch.nn.Module):
        raise TaskError(f"{model.source} returned {type(module).__name__}, not a torch.nn.Module")
    checkpoint = inputs.get("checkpoint")
    if checkpoint is not None:
        _load_checkpoint(module, checkpoint)
    return module.float().eval()


def _load_checkpoint(module: Any, path: Path) -> None:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise TaskError(f"cannot load checkpoint {path.name}: {type(error).__name__}: {error}") from error
    # Training scripts often wrap the weights: {"state_dict": ...} or {"model": ...}.
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    try:
        module.load_state_dict(state)
    except Exception as error:
        raise TaskError(f"checkpoint does not fit the model: {error}") from error


def as_output_list(result: Any, names: Sequence[str]) -> list[Any]:
    """The model's outputs as a flat list in the order of the spec's output names.

    A dict is read by name; tuples and lists, nested or not, are flattened in order, as the ONNX
    exporters flatten them.
    """
    if isinstance(result, Mapping):
        missing = [name for name in names if name not in result]
        if missing:
            raise TaskError(
                f"the model returns a dict with keys {sorted(map(str, result))}; "
                f"outputs {missing} are not among them",
                ["name the config's outputs after the dict's keys"],
            )
        return [result[name] for name in names]
    from torch.utils import _pytree

    leaves = _pytree.tree_leaves(result)
    if len(leaves) != len(names):
        raise TaskError(
            f"the model returns {len(leaves)} output tensor(s) "
            f"but the config names {len(names)}: {list(names)}",
            ["list one name per returned tensor, in the order forward() returns them"],
        )
    return leaves


def input_binding(model: Any, source: str, declared: Sequence[str]) -> Binding:
    """How the declared inputs bind to the instantiated model's `forward` (see binding.py)."""
    found = bind(model.forward, declared, f"{source}.forward")
    if isinstance(found, list):
        messages = [problem.message for problem in found]
        raise TaskError(messages[0], [*messages[1:], "name the config's inputs after forward's parameters"])
    return found


def model_source_problems(spec: Spec) -> list[Problem]:
    """The model source cannot be imported, or (for an nn.Module class) its `forward` does not take
    the declared inputs: checked before export or validate runs. A factory's model is checked when
    the export instantiates it."""
    try:
        source = import_attribute(spec.model.source, module_search_path(spec.directory), "model.source")
    except TaskError as error:
        return [
            Problem(
                str(error),
                location=spec.location(("model", "source")),
                field_path="model.source",
                hint=" ".join(error.details)
                or "check the module path and that its dependencies are installed",
            )
        ]
    forward = getattr(source, "forward", None) if isinstance(source, type) else None
    if forward is None:
        return []
    found = bind(forward, [t.name for t in spec.inputs], f"{spec.model.source}.forward", unbound=True)
    if not isinstance(found, list):
        return []
    return [
        Problem(
            problem.message,
            location=spec.location(("inputs", problem.input) if problem.input else ("inputs",)),
            field_path=f"inputs.{problem.input}" if problem.input else "inputs",
            hint="name the inputs after forward's parameters: they are passed by name",
        )
        for problem in found
    ]
