"""A plan: the specs, their task graph, and which tasks are cached and which must run (and why)."""

from __future__ import annotations

from dataclasses import dataclass

from trtbuild.errors import ConfigError, Problem
from trtbuild.plan.graph import Graph, TaskNode
from trtbuild.plan.status import NodeStatus
from trtbuild.spec.model import Spec
from trtbuild.store import Store


@dataclass
class Plan:
    specs: list[Spec]
    graph: Graph
    statuses: dict[str, NodeStatus]
    store: Store

    def to_run(self) -> list[str]:
        return [node_id for node_id, status in self.statuses.items() if status.state == "run"]

    def nodes_to_run(self, spec: Spec, kind: str) -> list[TaskNode]:
        """The tasks of `kind` for `spec`'s model that must run, in graph order."""
        nodes = (self.graph.nodes[node_id] for node_id in self.to_run())
        return [node for node in nodes if node.kind == kind and node.model == spec.model.name]


def preflight(plan: Plan) -> None:
    """Each kind's checks of what its tasks that must run need, before any runs: a bad model source
    or a missing backend is a config error (exit 2), not a task failure an hour into a build.
    Fully cached kinds are not checked: their checks may import what a cached run must not."""
    problems: list[Problem] = []
    for spec in plan.specs:
        for stage in plan.graph.pipeline.stages:
            nodes = plan.nodes_to_run(spec, stage.name)
            if nodes:
                problems += stage.kind.preflight(spec, nodes)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))  # kinds that share a check report it once
