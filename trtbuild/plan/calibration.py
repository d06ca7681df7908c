"""What a precision task's key needs of the calibration data: params, and files hashed by content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trtbuild.spec.model import CalibrationSpec


def calibration_inputs(
    calibration: CalibrationSpec, inputs: list[dict[str, Any]], profiles: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Path]]:
    """(params, files) describing the calibration data of a quantized cell.

    A file's content enters the key, so new calibration data reruns exactly the quantized cells.
    """
    if calibration.source == "npz" and calibration.path is not None:
        return {"source": "npz"}, {"calibration": calibration.path}
    # random: seeded data at the first profile's opt shape, `samples` items along the batch axis.
    shapes = {
        t["name"]: (profiles[0]["shapes"][t["name"]]["opt"] if profiles else t["shape"]) for t in inputs
    }
    return {
        "source": "random",
        "samples": calibration.samples,
        "seed": calibration.seed,
        "shapes": shapes,
    }, {}
