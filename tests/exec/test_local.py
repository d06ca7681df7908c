"""The local executor hands a task its upstream outputs as hard links to the cache's blobs: a task
that writes to one fails, rather than leaving a blob whose bytes its hash no longer names (issue 9,
finding 5: ModelOpt's quantize did this to the exported graph, and the next run rebuilt it)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.conftest import Project
from trtbuild import api
from trtbuild.spec.model import Cell, Spec
from trtbuild.tasks import export
from trtbuild.tasks.base import Derived, JsonDict, TaskContext, TaskKind
from trtbuild.tasks.pipeline import PIPELINE, From, Stage

pytestmark = pytest.mark.slow  # exports, builds and validates the tiny model


@dataclass(frozen=True)
class AppendParams:
    pass


class AppendToInput(TaskKind[AppendParams]):
    """Like a tool that saves its input in place (onnx.shape_inference.infer_shapes_path)."""

    name = "append-to-input"
    version = 1
    outputs = ("done.txt",)

    def derive(self, spec: Spec, cell: Cell) -> Derived[AppendParams]:
        return Derived(AppendParams())

    def tools(self, params: AppendParams) -> JsonDict:
        return {}

    def run(self, ctx: TaskContext[AppendParams]) -> JsonDict:
        with open(ctx.inputs["graph.onnx"], "ab") as graph:
            graph.write(b"\0")
        ctx.output("done.txt").write_text("done\n")
        return {}


def test_a_task_that_writes_to_its_input_fails_and_the_input_is_rebuilt(tiny_project: Project) -> None:
    stage = Stage(AppendToInput(), {"graph.onnx": From((export.NAME,), export.OUTPUT)}, shared=True)
    first = api.run(
        [tiny_project.config],
        cache_dir=tiny_project.cache,
        out_dir=tiny_project.out,
        pipeline=PIPELINE.with_stage(stage),
    )
    assert [event.id for event in first.failed_tasks] == ["tiny/append-to-input"]
    assert "wrote to its input graph.onnx (tiny/export's model.onnx)" in first.failed_tasks[0].reason

    # The damaged blob is gone, so the export runs again; what depends on its bytes hits the cache.
    second = tiny_project.run_json()
    assert second["exit_status"] == 0
    ran = {task["id"] for task in second["tasks"] if task["state"] == "ran"}
    assert ran == {"tiny/export"}, json.dumps(second["tasks"], indent=1)
