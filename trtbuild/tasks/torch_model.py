"""Instantiate the user's PyTorch model from `module:attr`, kwargs and an optional checkpoint."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError


def import_source(source: str, search_path: Sequence[str]) -> Any:
    """The object named by "module:attr", importing with the config's directory on sys.path."""
    module_name, _, attr = source.partition(":")
    for entry in reversed(search_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import-time failure of user code
        raise TaskError(
            f"cannot import model source module '{module_name}': {type(error).__name__}: {error}"
        ) from error
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TaskError(
            f"module '{module_name}' has no attribute '{attr}'",
            [f"check model.source; names in the module include: {', '.join(_public_names(module))}"],
        ) from None


def _public_names(module: Any) -> list[str]:
    return sorted(name for name in vars(module) if not name.startswith("_"))[:20]


def load_model(
    model: Mapping[str, Any], inputs: Mapping[str, Path], search_path: Sequence[str]
) -> Any:  # torch.nn.Module
    """The model in eval mode on the CPU, in fp32, with its checkpoint loaded when one is given."""
    import torch

    factory = import_source(model["source"], search_path)
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
