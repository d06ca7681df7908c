"""What every calibration source is: params that key it, and how to check and load its data.

A source (npz, images, callable, random) is one frozen dataclass: its fields are what enters the
precision task's key, its `derive` says which files it reads (their content is keyed too), its
`preflight` reads the first of its data as the task will, and `load` makes the arrays ModelOpt
calibrates on. numpy, PIL and the user's code are imported by the methods that need them: this
package is imported at plan time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import CalibrationSpec, Dim, Spec, TensorSpec

Files = dict[str, Path]
Arrays = dict[str, Any]  # input name -> numpy array, every sample stacked along axis 0
# (field under `calibration`, message, hint): one problem found before anything runs.
SourceProblem = tuple[str, str, str]


@dataclass(frozen=True)
class InputSignature:
    """What calibration data is checked and shaped against: an input's name, dims and dtype (not its
    `values`, which only generated data uses: changing them must not rerun real-data calibration)."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str

    @classmethod
    def of(cls, tensor: TensorSpec) -> InputSignature:
        return cls(tensor.name, tensor.shape, tensor.dtype)


@dataclass(frozen=True, kw_only=True)
class CalibrationSource(ABC):
    source: str  # its name in the spec (`calibration.source`)
    # Validate on the last `holdout` samples (validate.data.holdout): calibration uses the rest.
    holdout: int | None = None

    # The fields of the spec's `calibration` block this source reads (besides `source`).
    fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def spec_problems(cls, spec: Spec, calibration: CalibrationSpec) -> Iterator[Problem]:
        """Problems of the config's calibration block for this source, found when it is loaded
        (a file or module that must exist); its data is read later, by `preflight`."""
        return iter(())

    def production_ready(self) -> bool:
        """False for random data (for trying things out): the precision task marks its output."""
        return True

    @abstractmethod
    def load(self, files: Mapping[str, Path], search_path: Sequence[str]) -> Arrays:
        """Every calibration sample, by input name."""

    def preflight(
        self, spec: Spec, files: Mapping[str, Path], search_path: Sequence[str]
    ) -> list[SourceProblem]:
        """Problems with the data, found cheaply before any task runs (`spec`: the cell's view)."""
        return []

    def calibration_arrays(self, files: Mapping[str, Path], search_path: Sequence[str]) -> Arrays:
        """What calibrates: everything `load` gives, less the samples held out for validation."""
        arrays = self.load(files, search_path)
        return split_holdout(arrays, self.holdout)[0] if self.holdout else arrays


def split_holdout(arrays: Mapping[str, Any], holdout: int) -> tuple[Arrays, Arrays]:
    """(calibration, validation): the last `holdout` samples of every input validate, the rest
    calibrate, so a cell is never validated on the data it was calibrated on."""
    rows = min(len(array) for array in arrays.values())
    if holdout >= rows:
        raise TaskError(
            f"validate.data.holdout is {holdout} but the calibration data has {rows} samples",
            ["hold out fewer samples, or provide more calibration data"],
        )
    cut = rows - holdout
    return (
        {name: array[:cut] for name, array in arrays.items()},
        {name: array[cut:rows] for name, array in arrays.items()},
    )


def batched_shapes(
    opt: Mapping[str, Sequence[int]], inputs: Sequence[Any], samples: int
) -> dict[str, list[int]]:
    """Each input's opt shape with `samples` along a dynamic batch axis (axis 0 named)."""
    shapes = {}
    for tensor in inputs:
        batched = bool(tensor.shape) and isinstance(tensor.shape[0], str)
        shape = list(opt[tensor.name])
        shapes[tensor.name] = [samples, *shape[1:]] if batched else shape
    return shapes
