"""Matrix runs end to end: cells share every task they have in common; --only selects cells."""

from __future__ import annotations

import pytest

from tests.conftest import Project, ran_kinds

pytestmark = pytest.mark.slow


def with_matrix(project: Project, matrix: str) -> None:
    project.edit_config("build:\n  targets: [SM89]\n", f"{matrix}\n")


def test_targets_axis_shares_precision_tasks(tiny_project: Project) -> None:
    with_matrix(tiny_project, "matrix:\n  precision: [fp32, fp16]\n  build.targets: [[SM86], [SM89]]")
    document = tiny_project.run_json()
    assert document["exit_status"] == 0, document
    # The graph in a precision does not depend on the GPU it is built for.
    assert ran_kinds(document) == {
        "export": 1,
        "simplify": 1,
        "probe": 1,
        "reference": 1,
        "precision": 2,
        "build": 4,
        "validate": 4,
    }
    built = {cell["cell"] for cell in document["cells"]}
    assert built == {"fp32-SM86", "fp32-SM89", "fp16-SM86", "fp16-SM89"}
    for cell in built:
        assert (tiny_project.out / "tiny" / cell / "model.engine").is_file()


def test_opset_axis_makes_one_export_per_opset(tiny_project: Project) -> None:
    with_matrix(tiny_project, "matrix:\n  export.opset: [17, 18]\nbuild: {targets: [SM89]}")
    document = tiny_project.run_json()
    assert ran_kinds(document) == {
        "export": 2,
        "simplify": 2,
        "probe": 2,
        "reference": 1,  # the opset changes the graph, not the PyTorch model's outputs
        "precision": 2,
        "build": 2,
        "validate": 2,
    }
    ids = {task["id"] for task in document["tasks"]}
    assert {"tiny/17/export", "tiny/18/export"} <= ids


def test_only_runs_the_selected_cells(tiny_project: Project) -> None:
    with_matrix(tiny_project, "matrix:\n  precision: [fp32, fp16]\nbuild: {targets: [SM89]}")
    document = tiny_project.run_json("--only", "fp16")
    assert {task["id"] for task in document["tasks"]} == {
        "tiny/export",
        "tiny/simplify",
        "tiny/probe",
        "tiny/reference",
        "tiny/fp16/precision",
        "tiny/fp16/build",
        "tiny/fp16/validate",
    }
    assert not (tiny_project.out / "tiny" / "fp32").exists()
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--only", "fp64")
    assert completed.returncode == 2
    assert "cells are: fp16, fp32" in completed.stderr
