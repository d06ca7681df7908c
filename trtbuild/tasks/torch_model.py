"""Instantiate the user's PyTorch model from `module:attr`, kwargs and an optional checkpoint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError
from trtbuild.tasks.importing import import_attribute


def load_model(
    model: Mapping[str, Any], inputs: Mapping[str, Path], search_path: Sequence[str]
) -> Any:  # torch.nn.Module
    """The model in eval mode on the CPU, in fp32, with its checkpoint loaded when one is given."""
    import torch

    factory = import_attribute(model["source"], search_path, "model.source")
    # A model without a checkpoint is randomly initialised: seed the generator so that export and
    # validate (separate tasks, maybe separate processes) instantiate the very same weights.
    torch.manual_seed(0)
    try:
        module = factory(**model["kwargs"])
    except Exception as error:
        raise TaskError(
            f"calling {model['source']}(**model.kwargs) failed: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(module, torch.nn.Module):
        raise TaskError(f"{model['source']} returned {type(module).__name__}, not a torch.nn.Module")
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
    """The model's outputs as a list in the order of the spec's output names."""
    if isinstance(result, Mapping):
        missing = [name for name in names if name not in result]
        if missing:
            raise TaskError(f"the model returned a dict without the outputs {missing}")
        return [result[name] for name in names]
    flat = list(result) if isinstance(result, (tuple, list)) else [result]
    if len(flat) != len(names):
        raise TaskError(
            f"the model returned {len(flat)} outputs but the spec names {len(names)}: {list(names)}"
        )
    return flat
