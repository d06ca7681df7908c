"""Checks made before any task runs, of what only the tasks that must run need.

They may import what planning may not (numpy to read a calibration file), which is why they run
only when such a task is out of date, and never on a fully cached run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trtbuild.errors import Problem
from trtbuild.plan import toolchain
from trtbuild.spec.model import Spec

if TYPE_CHECKING:
    from trtbuild.api import Plan

MODELOPT_HINT = (
    "pip install 'trtbuild[precision]' (nvidia-modelopt with onnx-graphsurgeon, onnxconverter-common, "
    "onnxslim, ml_dtypes, lief and polygraphy)"
)


def check_precision_inputs(the_plan: Plan, spec: Spec) -> list[Problem]:
    nodes = [
        the_plan.graph.nodes[node_id]
        for node_id in the_plan.to_run()
        if the_plan.graph.nodes[node_id].kind == "precision"
        and the_plan.graph.nodes[node_id].model == spec.model.name
    ]
    cells = sorted({cell for node in nodes if node.params["precision"] != "fp32" for cell in node.cells})
    if not cells:
        return []
    problems: list[Problem] = []
    if toolchain.version_of("nvidia-modelopt") is None:
        problems.append(
            Problem(
                f"cells {', '.join(cells)} need NVIDIA ModelOpt, which is not installed",
                location=spec.location(("precision",)),
                field_path="precision",
                hint=MODELOPT_HINT,
            )
        )
    calibration = spec.calibration
    quantized = [c for node in nodes if "calibration" in node.params for c in node.cells]
    if quantized and calibration is not None and calibration.source == "npz" and calibration.path is not None:
        problems += [
            Problem(
                f"cell(s) {', '.join(sorted(quantized))}: {message}",
                location=spec.location(("calibration", "path")),
                field_path="calibration.path",
                hint="the .npz must hold one array per model input, named after it, batch first",
            )
            for message in npz_problems(spec)
        ]
    return problems


def npz_problems(spec: Spec) -> list[str]:
    """What is wrong with the calibration .npz against the spec's inputs: names, ranks, fixed dims, dtypes."""
    import numpy as np

    assert spec.calibration is not None and spec.calibration.path is not None
    path = spec.calibration.path
    try:
        archive = np.load(path)
    except Exception as error:
        return [f"cannot read {path.name} as .npz: {type(error).__name__}: {error}"]
    problems: list[str] = []
    with archive:
        names = set(archive.files)
        for tensor in spec.inputs:
            if tensor.name not in names:
                problems.append(
                    f"{path.name} has no array for input '{tensor.name}' (it has {sorted(names)})"
                )
                continue
            array = archive[tensor.name]
            if array.ndim != len(tensor.shape):
                problems.append(
                    f"array '{tensor.name}' has rank {array.ndim}, "
                    f"input '{tensor.name}' has rank {len(tensor.shape)}: {list(tensor.shape)}"
                )
                continue
            fixed = [
                f"axis {axis}: {size} != {dim}"
                for axis, (size, dim) in enumerate(zip(array.shape, tensor.shape, strict=True))
                if isinstance(dim, int) and size != dim
            ]
            if fixed:
                problems.append(
                    f"array '{tensor.name}' of shape {list(array.shape)} does not fit {list(tensor.shape)}: "
                    + "; ".join(fixed)
                )
            if str(array.dtype) != tensor.dtype:
                problems.append(
                    f"array '{tensor.name}' is {array.dtype}, input '{tensor.name}' is {tensor.dtype}"
                )
        extra = sorted(names - {t.name for t in spec.inputs})
        if extra:
            problems.append(f"{path.name} has arrays for unknown inputs {extra}")
    return problems
