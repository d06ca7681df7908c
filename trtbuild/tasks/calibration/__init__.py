"""Calibration data for Q/DQ quantization: one class per source (npz, images, callable, random).

Each class serves the config checks at load (`spec_problems`, `fields`), keying (its fields and
`derive`), preflight and loading; `for_spec` picks the class the spec's `calibration.source` names.
"""

from __future__ import annotations

import dataclasses

from trtbuild.errors import Problem
from trtbuild.spec.model import Spec
from trtbuild.tasks.calibration import spec_checks
from trtbuild.tasks.calibration.base import CalibrationSource, Files, split_holdout
from trtbuild.tasks.calibration.from_callable import CallableCalibration
from trtbuild.tasks.calibration.from_npz import NpzCalibration
from trtbuild.tasks.calibration.from_random import RandomCalibration
from trtbuild.tasks.calibration.images import ImagesCalibration

Calibration = NpzCalibration | ImagesCalibration | CallableCalibration | RandomCalibration
SOURCES: dict[str, type[Calibration]] = {
    cls.source: cls for cls in (NpzCalibration, ImagesCalibration, CallableCalibration, RandomCalibration)
}


def spec_problems(spec: Spec) -> list[Problem]:
    """Problems of the config's calibration block, found when it is loaded (each cell's view)."""
    return list(spec_checks.spec_problems(spec, dict(SOURCES)))


def for_spec(spec: Spec) -> tuple[Calibration, Files]:
    """The calibration source of `spec` (a cell's view), with the files whose content it keys."""
    assert spec.calibration is not None
    calibration, files = SOURCES[spec.calibration.source].derive(spec)
    holdout = spec.validate.holdout  # those samples validate instead
    return (calibration if holdout is None else dataclasses.replace(calibration, holdout=holdout)), files


__all__ = [
    "SOURCES",
    "Calibration",
    "CalibrationSource",
    "Files",
    "for_spec",
    "spec_problems",
    "split_holdout",
]
