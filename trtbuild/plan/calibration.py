"""What a precision task's key needs of the calibration data: params, and files hashed by content."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trtbuild.plan.code import code_identity
from trtbuild.spec.loader import module_search_path
from trtbuild.spec.model import CalibrationSpec
from trtbuild.tasks.calibration import CODE_PREFIX, IMAGE_PREFIX

Params = dict[str, Any]
Files = dict[str, Path]


def calibration_inputs(
    calibration: CalibrationSpec,
    inputs: list[dict[str, Any]],
    profiles: list[dict[str, Any]],
    search_path: Sequence[str] | None = None,
) -> tuple[Params, Files]:
    """(params, files) describing the calibration data of a quantized cell.

    A file's content enters the key, so new calibration data reruns exactly the quantized cells.
    `search_path` is where a callable's module is looked for (the config's module search path; by
    default the current directory's): it decides which code is keyed, but is not keyed itself.
    """
    if calibration.source == "npz" and calibration.path is not None:
        return {"source": "npz"}, {"calibration": calibration.path}
    if calibration.source == "images":
        return _images(calibration, inputs, profiles)
    if calibration.source == "callable":
        paths = list(search_path) if search_path is not None else module_search_path(Path.cwd())
        return _callable(calibration, inputs, paths)
    return _random(calibration, inputs, profiles)


def _opt_shapes(inputs: list[dict[str, Any]], profiles: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {t["name"]: (profiles[0]["shapes"][t["name"]]["opt"] if profiles else t["shape"]) for t in inputs}


def _random(
    calibration: CalibrationSpec, inputs: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> tuple[Params, Files]:
    # Seeded data at the first profile's opt shape, `samples` items along the batch axis.
    return {
        "source": "random",
        "samples": calibration.samples,
        "seed": calibration.seed,
        "shapes": _opt_shapes(inputs, profiles),
    }, {}


def _images(
    calibration: CalibrationSpec, inputs: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> tuple[Params, Files]:
    """Every image used is a file input (its content is keyed); images beyond `samples` are not,
    so editing one of them reruns nothing. The preprocessing and the fed input are params."""
    assert calibration.path is not None  # the semantic checks made sure
    root = calibration.path
    images = calibration.image_files()[: calibration.samples]
    files = {f"{IMAGE_PREFIX}{path.relative_to(root).as_posix()}": path for path in images}
    name = calibration.input or inputs[0]["name"]
    tensor = next(t for t in inputs if t["name"] == name)
    preprocess = calibration.preprocess
    # Pixels are 0..255: float inputs usually want [0, 1] before mean/std, integer inputs raw values.
    default_scale = 1.0 if tensor["dtype"].startswith(("int", "uint")) else 255.0
    others = [t for t in inputs if t["name"] != name]
    params: Params = {
        "source": "images",
        "input": {"name": name, "shape": tensor["shape"], "dtype": tensor["dtype"]},
        "samples": calibration.samples,
        "preprocess": {
            "resize": preprocess.resize,
            "crop": preprocess.crop,
            "scale": preprocess.scale if preprocess.scale is not None else default_scale,
            "mean": list(preprocess.mean),
            "std": list(preprocess.std),
            "layout": preprocess.layout,
        },
    }
    if others:
        # Inputs the images do not feed get seeded random data, as source random makes it.
        params["others"] = {
            "inputs": others,
            "shapes": _opt_shapes(others, profiles),
            "seed": calibration.seed,
        }
    return params, files


def _callable(
    calibration: CalibrationSpec, inputs: list[dict[str, Any]], search_path: list[str]
) -> tuple[Params, Files]:
    """The function's identity: its name, and its code as `_model_params` in the resolver keys a
    model's: a local module by the content of every .py file of its top-level package, an installed
    one by its distribution's version. What the function reads at run time is not keyed."""
    assert calibration.function is not None  # the semantic checks made sure
    package, files = code_identity(calibration.function.partition(":")[0], search_path, CODE_PREFIX)
    return {
        "source": "callable",
        "function": calibration.function,
        "package": package,
        "samples": calibration.samples,
        # What each batch is checked against: names, fixed dims and dtypes.
        "inputs": [{"name": t["name"], "shape": t["shape"], "dtype": t["dtype"]} for t in inputs],
    }, files
