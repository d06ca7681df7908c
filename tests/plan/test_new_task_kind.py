"""A task kind is one unit plus one pipeline entry: a fixture kind, defined here and nowhere in
trtbuild, is planned, keyed, run, locked and explained like the built-in ones."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from tests.conftest import Project
from trtbuild import api
from trtbuild.spec.model import Cell, Spec
from trtbuild.tasks import build, export
from trtbuild.tasks.base import Derived, JsonDict, TaskContext, TaskKind
from trtbuild.tasks.pipeline import PIPELINE, From, Pipeline, Stage

pytestmark = pytest.mark.slow  # runs the tiny model's export, build and validate once


@dataclass(frozen=True)
class CountParams:
    op_types: tuple[str, ...]  # which ONNX op types to count


class CountNodes(TaskKind[CountParams]):
    """Counts nodes of some op types in the exported graph: cheap, and shared by every cell."""

    name = "count-nodes"
    version = 1
    outputs = ("counts.json",)

    def __init__(self, op_types: tuple[str, ...]) -> None:
        self.op_types = op_types

    def derive(self, spec: Spec, cell: Cell) -> Derived[CountParams]:
        return Derived(CountParams(self.op_types))

    def tools(self, params: CountParams) -> JsonDict:
        return {"counter": "1.0"}

    def run(self, ctx: TaskContext[CountParams]) -> JsonDict:
        import onnx

        graph = onnx.load(str(ctx.inputs["graph.onnx"])).graph
        counts = {op: sum(node.op_type == op for node in graph.node) for op in ctx.params.op_types}
        ctx.output("counts.json").write_text(json.dumps(counts, sort_keys=True))
        return {"counted": sum(counts.values())}


def counting(*op_types: str) -> Pipeline:
    stage = Stage(
        CountNodes(op_types),
        {"graph.onnx": From((export.NAME,), export.OUTPUT)},
        shared=True,
        artifacts=("counts.json",),
    )
    return PIPELINE.with_stage(stage)


def test_a_fixture_kind_is_planned_keyed_locked_and_explained(tiny_project: Project) -> None:
    pipeline = counting("Conv")
    planned = api.plan([tiny_project.config], cache_dir=tiny_project.cache, pipeline=pipeline)
    node = planned.graph.nodes["tiny/count-nodes"]  # shared: one task for every cell
    assert node.params_json == {"op_types": ["Conv"]}
    assert planned.graph.upstream([node.id]) == ["tiny/export", "tiny/count-nodes"]
    assert planned.statuses[node.id].reason == "after tiny/export"

    first = api.run(
        [tiny_project.config], cache_dir=tiny_project.cache, out_dir=tiny_project.out, pipeline=pipeline
    )
    assert first.exit_status == 0, [event.reason for event in first.failed_tasks]
    key, material = first.materials[node.id]
    assert material["kind"] == "count-nodes" and material["params"] == {"op_types": ["Conv"]}
    assert material["tools"] == {"counter": "1.0"}
    assert json.loads((tiny_project.out / "tiny" / "fp32" / "counts.json").read_text()) == {"Conv": 1}
    entry = json.loads(tiny_project.config.with_suffix(".lock").read_text())["tasks"]["tiny/count-nodes"]
    assert entry["key"] == key and entry["params"] == {"op_types": ["Conv"]}
    assert set(entry["inputs"]) == {"graph.onnx"}

    again = api.plan([tiny_project.config], cache_dir=tiny_project.cache, pipeline=pipeline)
    assert again.statuses[node.id].state == "cached" and again.to_run() == []

    changed = api.plan([tiny_project.config], cache_dir=tiny_project.cache, pipeline=counting("Conv", "Gemm"))
    reasons = api.explain_plan(changed)
    assert reasons["tiny/count-nodes"] == ['count-nodes.op_types: ["Conv"] -> ["Conv", "Gemm"]']
    assert changed.to_run() == ["tiny/count-nodes"]  # nothing else depends on it


class Fingerprint(TaskKind[CountParams]):
    """A stage that leaves no file under build/: still planned, locked and explained."""

    name = "fingerprint"
    version = 1
    outputs = ("fingerprint.txt",)

    def derive(self, spec: Spec, cell: Cell) -> Derived[CountParams]:
        return Derived(CountParams(()))

    def tools(self, params: CountParams) -> JsonDict:
        return {}

    def run(self, ctx: TaskContext[CountParams]) -> JsonDict:
        ctx.output("fingerprint.txt").write_text(str(ctx.inputs["engine.json"].stat().st_size))
        return {}


def test_a_stage_without_artifacts_is_locked(tiny_project: Project) -> None:
    stage = Stage(Fingerprint(), {"engine.json": From((build.NAME,), build.ENGINE_JSON)})
    pipeline = PIPELINE.with_stage(stage)
    result = api.run(
        [tiny_project.config], cache_dir=tiny_project.cache, out_dir=tiny_project.out, pipeline=pipeline
    )
    assert result.exit_status == 0, [event.reason for event in result.failed_tasks]
    lock = json.loads(tiny_project.config.with_suffix(".lock").read_text())["tasks"]
    assert lock["tiny/fp32/fingerprint"]["cells"] == ["fp32"]
    assert not (tiny_project.out / "tiny" / "fp32" / "fingerprint.txt").exists()
    api.check_locked(api.plan([tiny_project.config], cache_dir=tiny_project.cache, pipeline=pipeline))


@pytest.mark.parametrize(
    ("stage", "words"),
    [
        (
            Stage(CountNodes(()), {"g": From((export.NAME,), "graph.onnx")}),
            r"stage export makes no graph\.onnx",
        ),
        (Stage(CountNodes(()), {"g": From(("later",), export.OUTPUT)}), "none of them earlier"),
        (Stage(CountNodes(()), artifacts=("count.json",)), r"artifact count\.json is not among its outputs"),
        (Stage(Fingerprint(), artifacts=("fingerprint.txt",)), ""),
    ],
)
def test_a_mistaken_declaration_is_refused_when_made(stage: Stage, words: str) -> None:
    if not words:  # a correct declaration is accepted
        PIPELINE.with_stage(stage)
        return
    with pytest.raises(ValueError, match=words):
        PIPELINE.with_stage(stage)


def test_two_stages_cannot_put_the_same_file_in_a_cell() -> None:
    class Clash(Fingerprint):
        name = "clash"
        outputs = (build.ENGINE_JSON,)

    with pytest.raises(ValueError, match=r"artifact engine\.json is also build's"):
        PIPELINE.with_stage(Stage(Clash(), artifacts=(build.ENGINE_JSON,)))
    with pytest.raises(ValueError, match="declared twice"):
        PIPELINE.with_stage(PIPELINE.stages[0])
