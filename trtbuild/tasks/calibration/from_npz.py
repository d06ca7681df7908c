"""calibration source npz: one array per model input, named after it, batch first."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from trtbuild.errors import Problem
from trtbuild.spec.model import CalibrationSpec, Spec, TensorSpec
from trtbuild.spec.semantic import field_problem
from trtbuild.tasks.calibration.base import Arrays, CalibrationSource, Files, SourceProblem

FILE = "calibration"  # the precision task's input name for the .npz


@dataclass(frozen=True, kw_only=True)
class NpzCalibration(CalibrationSource):
    source: str = "npz"  # the file's content is keyed as a file input

    fields: ClassVar[frozenset[str]] = frozenset({"path"})

    @classmethod
    def spec_problems(cls, spec: Spec, calibration: CalibrationSpec) -> Iterator[Problem]:
        if calibration.path is None:
            yield field_problem(
                spec,
                ("calibration",),
                "source npz needs `path`",
                "add `path: calib.npz`, relative to the config",
            )
        elif not calibration.path.is_file():
            yield field_problem(
                spec,
                ("calibration", "path"),
                f"calibration file {calibration.path} does not exist",
                "check the path; it is relative to the config file",
            )

    @classmethod
    def derive(cls, spec: Spec) -> tuple[NpzCalibration, Files]:
        assert spec.calibration is not None and spec.calibration.path is not None
        return cls(), {FILE: spec.calibration.path}

    def load(self, files: Mapping[str, Path], search_path: Sequence[str]) -> Arrays:
        import numpy as np

        with np.load(files[FILE]) as archive:
            return {name: archive[name] for name in archive.files}

    def preflight(
        self, spec: Spec, files: Mapping[str, Path], search_path: Sequence[str]
    ) -> list[SourceProblem]:
        hint = "the .npz must hold one array per model input, named after it, batch first"
        return [("path", message, hint) for message in npz_problems(files[FILE], spec.inputs)]


def npz_problems(path: Path, inputs: Sequence[TensorSpec]) -> list[str]:
    """What is wrong with the .npz against the inputs: names, ranks, fixed dims, dtypes."""
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
            else:
                problems += _array_problems(archive[tensor.name], tensor)
        extra = sorted(names - {t.name for t in inputs})
        if extra:
            problems.append(f"{path.name} has arrays for unknown inputs {extra}")
    return problems


def _array_problems(array: object, tensor: TensorSpec) -> list[str]:
    shape = tuple(getattr(array, "shape", ()))
    if len(shape) != len(tensor.shape):
        return [
            f"array '{tensor.name}' has rank {len(shape)}, "
            f"input '{tensor.name}' has rank {len(tensor.shape)}: {list(tensor.shape)}"
        ]
    problems = []
    fixed = [
        f"axis {axis}: {size} != {dim}"
        for axis, (size, dim) in enumerate(zip(shape, tensor.shape, strict=True))
        if isinstance(dim, int) and size != dim
    ]
    if fixed:
        problems.append(
            f"array '{tensor.name}' of shape {list(shape)} does not fit {list(tensor.shape)}: "
            + "; ".join(fixed)
        )
    dtype = str(getattr(array, "dtype", ""))
    if dtype != tensor.dtype:
        problems.append(f"array '{tensor.name}' is {dtype}, input '{tensor.name}' is {tensor.dtype}")
    return problems
