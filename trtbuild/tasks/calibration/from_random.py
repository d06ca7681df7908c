"""calibration source random: seeded data made by each input's `values` (for trying things out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from trtbuild.spec.model import Spec, TensorSpec
from trtbuild.tasks.calibration.base import Arrays, CalibrationSource, Files, SourceProblem, batched_shapes
from trtbuild.tasks.params import opt_shapes
from trtbuild.tasks.values import NPZ_HINT, generated_arrays, npz_files, npz_messages


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
        ), npz_files(spec)

    def load(self, files: Mapping[str, Path], search_path: Sequence[str]) -> Arrays:
        return generated_arrays(self.inputs, self._shapes(), self.seed, files)

    def preflight(
        self, spec: Spec, files: Mapping[str, Path], search_path: Sequence[str]
    ) -> list[SourceProblem]:
        """Inputs read from an .npz: their arrays fill the calibration batch."""
        hint = f"{NPZ_HINT}; random calibration stacks its samples along a dynamic first axis"
        return [
            ("samples", f"input '{name}': {message}", hint)
            for name, message in npz_messages(self.inputs, self._shapes(), files)
        ]

    def _shapes(self) -> dict[str, list[int]]:
        samples = self.samples if self.samples is not None else 16
        return batched_shapes(self.shapes, self.inputs, samples)
