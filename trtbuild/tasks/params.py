"""Params shared by several task kinds: what they know of the model, its inputs, outputs and profiles.

Inputs and profiles are the spec's own frozen types (`TensorSpec`, `ProfileSpec`); outputs keep
only what an export depends on (a `classifier` flag changes validation, not the graph).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.spec.model import Dim, ProfileSpec, Spec, TensorSpec
from trtbuild.spec.source import module_search_path
from trtbuild.tasks.code import code_of

Shapes = dict[str, list[int]]


@dataclass(frozen=True)
class OutputParams:
    name: str
    shape: tuple[Dim, ...] | None = None


@dataclass(frozen=True)
class ModelParams:
    """The model's identity: its source, kwargs and what its code is (see `code.code_identity`)."""

    source: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    package: str | None = None  # "name==version" when the model comes from an installed distribution
    # The installed distributions its local code imports, by version (code.CodeIdentity.packages).
    imports: tuple[str, ...] = ()


def output_params(spec: Spec) -> tuple[OutputParams, ...]:
    return tuple(OutputParams(o.name, o.shape) for o in spec.outputs)


def dynamic_axes(tensors: tuple[TensorSpec | OutputParams, ...]) -> dict[str, dict[int, str]]:
    """Tensor name -> {axis: symbolic dim name}, for every tensor with a dynamic axis."""
    axes: dict[str, dict[int, str]] = {}
    for tensor in tensors:
        dims = {axis: dim for axis, dim in enumerate(tensor.shape or ()) if isinstance(dim, str)}
        if dims:
            axes[tensor.name] = dims
    return axes


def opt_shapes(inputs: tuple[TensorSpec, ...], profiles: tuple[ProfileSpec, ...]) -> Shapes:
    """Each input's shape in the first profile's opt (its declared shape when there is no profile)."""
    return {
        t.name: list(profiles[0].shapes[t.name].opt) if profiles else [int(d) for d in t.shape]
        for t in inputs
    }


def model_params(spec: Spec) -> tuple[ModelParams, dict[str, Path]]:
    """The model's identity and the files it is keyed by: its local code and its checkpoint."""
    code = code_of(spec, ("model", "source"), spec.model.module)
    files = code.keyed("source:")
    if spec.model.checkpoint is not None:
        files["checkpoint"] = spec.model.checkpoint
    return ModelParams(spec.model.source, dict(spec.model.kwargs), code.package, code.packages()), files


def user_code_context(spec: Spec) -> dict[str, Any]:
    """What tasks that import the user's code need but must not key: where to import it from."""
    return {"search_path": module_search_path(spec.directory), "config": str(spec.path)}
