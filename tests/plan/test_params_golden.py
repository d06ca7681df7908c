"""Every kind's key fields, pinned: params reuse the spec's own frozen types (TensorSpec, ProfileSpec,
Preprocess, ...), so a field added there would enter keys, and rerun tasks, without a change under
trtbuild/tasks/. A change here is a change of every cache key of that kind: bump the kind's version
(or KEY_SCHEME) on purpose, and say so."""

from __future__ import annotations

from typing import Any

from tests.conftest import Project
from trtbuild import api


def leaf_paths(value: Any, prefix: str = "") -> set[str]:
    """Dotted paths of the JSON's leaves; list items share their list's path (`inputs[].shape`)."""
    if isinstance(value, dict) and value:
        return {
            path
            for key, item in value.items()
            for path in leaf_paths(item, f"{prefix}.{key}" if prefix else key)
        }
    if isinstance(value, list) and value and isinstance(value[0], dict | list):
        return {path for item in value for path in leaf_paths(item, f"{prefix}[]")}
    return {prefix}


# The tiny config's float input: its `values` are the default uniform [0, 1).
TENSOR = {"name", "shape", "dtype", "values.kind", "values.low", "values.high"}
PROFILES = {
    "profiles[].name",
    "profiles[].shapes.input.min",
    "profiles[].shapes.input.opt",
    "profiles[].shapes.input.max",
}
MODEL = {"model.source", "model.kwargs.classes", "model.package", "model.imports"}  # export v12: imports
OUTPUTS = {"outputs[].name", "outputs[].shape"}

EXPECTED = {
    "export": MODEL
    | OUTPUTS
    | {f"inputs[].{f}" for f in TENSOR}
    | {"example_shapes.input", "opset", "exporter"},
    "simplify": OUTPUTS | {f"inputs[].{f}" for f in TENSOR},
    "probe": OUTPUTS | PROFILES | {f"inputs[].{f}" for f in TENSOR},
    "precision:fp32": {"precision", "autocast", "calibration"},
    "precision:fp16": {
        "precision",
        "calibration",
        "autocast.keep_io_types",
        "autocast.exclude_nodes",
        "autocast.exclude_op_types",
        # precision v6: AutoCast's thresholds
        "autocast.data_max",
        "autocast.init_max",
        "autocast.max_depth_of_reduction",
    },
    "precision:int8": {"precision", "autocast"}
    | {f"calibration.{f}" for f in ("source", "holdout", "samples", "seed", "shapes.input")}
    | {f"calibration.inputs[].{f}" for f in TENSOR},
    "build": PROFILES | {"backend", "precision", "workspace", "optimization_level", "targets"},
    # validate v18: the samples, their origin and the PyTorch outputs are the reference task's
    # (validate v19 changed its tools, not its params: the machine's GPUs)
    "reference": MODEL
    | PROFILES
    | {f"inputs[].{f}" for f in TENSOR}
    | {"outputs", "samples", "seed", "data"},
    "validate": OUTPUTS
    | {"precision", "classifiers", "metric", "backend", "targets"}
    | {"min_low_precision"}  # validate v13: the low-precision share gate
    | {f"tolerance.{f}" for f in ("atol", "rtol", "cosine", "top1", "top5", "custom")},
}


def test_every_kinds_key_fields_are_pinned(tiny_project: Project) -> None:
    tiny_project.edit_config(
        "build:\n", "precision: [fp32, fp16, int8]\ncalibration: {source: random}\nbuild:\n"
    )
    graph = api.plan([tiny_project.config], cache_dir=tiny_project.cache).graph
    found = {}
    for node in graph.nodes.values():
        label = f"{node.kind}:{node.params.precision}" if node.kind == "precision" else node.kind
        found.setdefault(label, leaf_paths(node.params_json))
    assert found == EXPECTED
