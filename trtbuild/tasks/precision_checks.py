"""The precision task's checks. When the config loads: each autocast.exclude_nodes pattern is a
regular expression. Preflight: ModelOpt is installed, and the calibration data reads as the task
will read it. Cells with the same calibration read the same data: each such group is checked once,
and its problems name every cell of the group. Whether each exclude_nodes pattern matches a node
is known only once the graph exists: the task checks it (`autocast_context` says where each
pattern is written)."""

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


def exclude_nodes_problems(spec: Spec) -> list[Problem]:
    if not spec.autocast.exclude_nodes:
        return []
    from trtbuild.tasks import node_patterns  # only a config that excludes nodes loads it (and difflib)

    problems = []
    for index, pattern in enumerate(spec.autocast.exclude_nodes):
        error = node_patterns.regex_error(pattern)
        if error is not None:
            escaped = node_patterns.quoted(node_patterns.exact_pattern(pattern))
            problems.append(
                Problem(
                    f"{node_patterns.quoted(pattern)} is not a regular expression ({error})",
                    location=spec.location(("autocast", "exclude_nodes", index)),
                    field_path=f"autocast.exclude_nodes[{index}]",
                    hint=f"a backslash escapes a special character: {escaped} is the name as written",
                )
            )
    return problems


def autocast_context(spec: Spec) -> dict[str, Any]:
    """Where each exclude_nodes pattern is written (file:line:col), for the task's messages."""
    locations = [
        spec.location(("autocast", "exclude_nodes", i)) for i in range(len(spec.autocast.exclude_nodes))
    ]
    return {"exclude_nodes_at": [str(location) if location else "" for location in locations]}
