"""Defect 6 of issue 13: a failure in one cell never costs another cell its up-to-date outputs.

On 7722d02 a plain `run` after a `--keep-going` run emptied the good cell's folder although every one
of its tasks was cached: the run cleared the planned cells' outputs first, stopped at the failure, and
never put the cached ones back. A failed or skipped cell's folder holds only outputs whose tasks
finished in this run (ran or cached, under today's key): anything older is removed before the run,
so it cannot pass for current."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Project, states

pytestmark = pytest.mark.slow

CELL_FILES = ["engine.json", "model.engine", "model.onnx", "precision.json", "validation.json"]


def _failing_first(project: Project) -> None:
    # classes: -1 cannot even instantiate the model; it is the first cell, so a plain run stops there.
    project.edit_config("build:\n", "matrix:\n  model.kwargs.classes: [-1, 10]\nbuild:\n")


def test_a_failed_cell_leaves_a_cached_cell_current(tiny_project: Project) -> None:
    _failing_first(tiny_project)
    going = tiny_project.run_json("--keep-going")
    assert states(going)["tiny/10/validate"] == "ran"
    # A fresh output folder (a new checkout, a CI job) and a stale engine in the failing cell's folder.
    tiny_project.out = tiny_project.root / "fresh"
    stale = tiny_project.out / "tiny" / "-1" / "model.engine"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an engine of an older key")
    plain = tiny_project.run_json()
    found = states(plain)
    assert found["tiny/-1/export"] == "failed"
    assert {found[f"tiny/10/{kind}"] for kind in ("export", "build", "validate")} == {"cached"}
    cell = tiny_project.out / "tiny" / "10"
    assert sorted(p.name for p in cell.iterdir()) == CELL_FILES
    report = json.loads((tiny_project.out / "tiny" / "report.json").read_text())
    assert [c["status"] for c in report["cells"]] == ["failed", "built"]
    assert not stale.exists(), "an output of an older key must not pass for the failed cell's"
