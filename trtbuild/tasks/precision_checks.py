"""The precision task's preflight: ModelOpt is installed, and the calibration data reads as the
task will read it. Cells with the same calibration read the same data: each such group is checked
once, and its problems name every cell of the group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trtbuild import toolchain
from trtbuild.errors import Problem
from trtbuild.spec.model import Spec
from trtbuild.tasks.base import Planned, params_json

MODELOPT_HINT = (
    "pip install 'trtbuild[precision]' (nvidia-modelopt with onnx-graphsurgeon, onnxconverter-common, "
    "onnxslim, ml_dtypes, lief and polygraphy)"
)


def modelopt_problems(spec: Spec, tasks: Sequence[Planned[Any]]) -> list[Problem]:
    cells = sorted({cell for task in tasks for cell in task.cells})
    if not cells or toolchain.version_of("nvidia-modelopt") is not None:
        return []
    return [
        Problem(
            f"cells {', '.join(cells)} need NVIDIA ModelOpt, which is not installed",
            location=spec.location(("precision",)),
            field_path="precision",
            hint=MODELOPT_HINT,
        )
    ]


def calibration_problems(spec: Spec, tasks: Sequence[Planned[Any]]) -> list[Problem]:
    groups: dict[str, list[Planned[Any]]] = {}
    for task in tasks:
        if task.params.calibration is not None:
            identity = repr([params_json(task.params.calibration), sorted(map(str, task.files.items()))])
            groups.setdefault(identity, []).append(task)
    problems: list[Problem] = []
    for group in groups.values():
        first = group[0]
        cells = ", ".join(sorted({cell for task in group for cell in task.cells}))
        search_path = list(first.context.get("search_path", []))
        problems += [
            Problem(
                f"cell(s) {cells}: {message}",
                location=spec.location(("calibration", field)),
                field_path=f"calibration.{field}",
                hint=hint,
            )
            for field, message, hint in first.params.calibration.preflight(spec, first.files, search_path)
        ]
    return problems
