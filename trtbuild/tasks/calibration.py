"""Calibration batches for Q/DQ quantization, from the source the spec declares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError
from trtbuild.tasks.sampling import random_arrays


def calibration_arrays(
    calibration: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]], files: Mapping[str, Path]
) -> dict[str, Any]:
    """Input name -> one numpy array holding every calibration sample, batch first."""
    source = calibration["source"]
    if source == "npz":
        import numpy as np

        with np.load(files["calibration"]) as archive:
            return {name: archive[name] for name in archive.files}
    if source == "random":
        return _random(calibration, inputs)
    raise TaskError(f"unknown calibration source {source!r}")


def _random(calibration: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`samples` seeded items at the first profile's opt shape, stacked along a dynamic batch axis."""
    shapes = {}
    for tensor in inputs:
        opt = calibration["shapes"][tensor["name"]]
        batched = bool(tensor["shape"]) and isinstance(tensor["shape"][0], str)
        shapes[tensor["name"]] = [calibration["samples"], *opt[1:]] if batched else list(opt)
    return random_arrays(inputs, shapes, seed=calibration["seed"])
