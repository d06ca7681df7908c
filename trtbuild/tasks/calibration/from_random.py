"""calibration source random: seeded data inside each input's range (for trying things out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from trtbuild.spec.model import Spec, TensorSpec
from trtbuild.tasks.calibration.base import Arrays, CalibrationSource, Files, batched_shapes
from trtbuild.tasks.params import opt_shapes
from trtbuild.tasks.sampling import random_arrays


@dataclass(frozen=True, kw_only=True)
class RandomCalibration(CalibrationSource):
    source: str = "random"
    fields: ClassVar[frozenset[str]] = frozenset({"samples", "seed"})
    samples: int | None
    seed: int
    shapes: dict[str, list[int]]  # the first profile's opt shape, per input
    inputs: tuple[TensorSpec, ...]

    def production_ready(self) -> bool:
        return False

    @classmethod
    def derive(cls, spec: Spec) -> tuple[RandomCalibration, Files]:
        assert spec.calibration is not None
        return cls(
            samples=spec.calibration.samples,
            seed=spec.calibration.seed,
            shapes=opt_shapes(spec.inputs, spec.profiles),
            inputs=spec.inputs,
        ), {}

    def load(self, files: Mapping[str, Path], search_path: Sequence[str]) -> Arrays:
        samples = self.samples if self.samples is not None else 16
        return random_arrays(self.inputs, batched_shapes(self.shapes, self.inputs, samples), self.seed)
