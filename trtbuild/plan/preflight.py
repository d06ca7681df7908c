"""Checks made before any task runs, of what only the tasks that must run need.

They may import what planning may not (numpy to read a calibration file, PIL to decode an image,
the user's calibration function), which is why they run only when such a task is out of date, and
never on a fully cached run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtbuild.errors import Problem, TaskError
from trtbuild.plan import toolchain
from trtbuild.plan.graph import TaskNode, canonical_json
from trtbuild.spec.loader import module_search_path
from trtbuild.spec.model import Spec, TensorSpec

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
    quantized = [node for node in nodes if "calibration" in node.params]
    if quantized:
        problems += calibration_problems(spec, quantized)
    return problems


def calibration_problems(spec: Spec, nodes: list[TaskNode]) -> list[Problem]:
    """Problems of the calibration data, read as the precision tasks will read it.

    Cells with the same calibration params and files read the same data: each such group is checked
    once, and its problems name every cell of the group.
    """
    groups: dict[str, list[TaskNode]] = {}
    for node in nodes:
        identity = canonical_json([node.params["calibration"], {k: str(v) for k, v in node.files.items()}])
        groups.setdefault(identity, []).append(node)
    problems: list[Problem] = []
    for group in groups.values():
        cells = ", ".join(sorted({cell for node in group for cell in node.cells}))
        problems += [
            Problem(
                f"cell(s) {cells}: {message}",
                location=spec.location(("calibration", field)),
                field_path=f"calibration.{field}",
                hint=hint,
            )
            for field, message, hint in _source_problems(spec, group[0])
        ]
    return problems


def _source_problems(spec: Spec, node: TaskNode) -> list[tuple[str, str, str]]:
    """(field, message, hint) for each problem of one precision node's calibration data."""
    calibration, files = node.params["calibration"], node.files
    source = calibration["source"]
    if source == "npz":
        hint = "the .npz must hold one array per model input, named after it, batch first"
        return [("path", message, hint) for message in npz_problems(files["calibration"], spec.inputs)]
    if source == "images":
        return _image_problems(calibration, files)
    if source == "callable":
        search_path = node.context.get("search_path") or module_search_path(spec.directory)
        return _callable_problems(calibration, search_path)
    return []


def _image_problems(calibration: dict[str, Any], files: dict[str, Path]) -> list[tuple[str, str, str]]:
    """Decode and preprocess the first image only (cheap), and compare it with the input's shape."""
    from trtbuild.tasks.calibration import CropError, image_paths, preprocess_image

    tensor = calibration["input"]
    paths = image_paths(files)
    if not paths:  # the folder was emptied after the config was loaded
        return [("path", "the calibration folder has no images", "put calibration images in it")]
    first = paths[0]
    try:
        sample = preprocess_image(first, calibration["preprocess"], tensor)
    except CropError as error:
        return [("preprocess", str(error), " ".join(error.details))]
    except TaskError as error:  # the image cannot be decoded
        return [("path", str(error), " ".join(error.details))]
    expected = list(tensor["shape"])[1:]
    wrong = [
        f"axis {axis + 1}: {size} != {dim}"
        for axis, (size, dim) in enumerate(zip(sample.shape, expected, strict=True))
        if isinstance(dim, int) and size != dim
    ]
    if not wrong:
        return []
    return [
        (
            "preprocess",
            f"image {first.name} becomes a sample of shape {list(sample.shape)}, which does not fit "
            f"input '{tensor['name']}' {list(tensor['shape'])}: " + "; ".join(wrong),
            "set calibration.preprocess resize/crop to the input's height and width, "
            "and layout to its axis order",
        )
    ]


def _callable_problems(calibration: dict[str, Any], search_path: list[str]) -> list[tuple[str, str, str]]:
    """Call the function and check its first batch: names, shapes and dtypes against the inputs."""
    from trtbuild.tasks.calibration import batch_problems, first_batch

    function = calibration["function"]
    hint = (
        "the function must return or yield dicts {input name: array} (numpy or torch), batch first, "
        "with each input's dtype and fixed dims"
    )
    try:
        batch = first_batch(function, calibration["inputs"], search_path)
    except TaskError as error:
        return [("function", str(error), " ".join(error.details) or hint)]
    if batch is None:
        return [("function", f"{function} gave no batches", hint)]
    return [
        ("function", f"first batch of {function}: {message}", hint)
        for message in batch_problems(batch, calibration["inputs"])
    ]


def npz_problems(path: Path, inputs: Sequence[TensorSpec]) -> list[str]:
    """What is wrong with the calibration .npz against the inputs: names, ranks, fixed dims, dtypes."""
    import numpy as np

    try:
        archive = np.load(path)
    except Exception as error:
        return [f"cannot read {path.name} as .npz: {type(error).__name__}: {error}"]
    problems: list[str] = []
    with archive:
        names = set(archive.files)
        for tensor in inputs:
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
        extra = sorted(names - {t.name for t in inputs})
        if extra:
            problems.append(f"{path.name} has arrays for unknown inputs {extra}")
    return problems
