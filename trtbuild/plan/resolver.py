"""The resolver: each spec's cells -> task nodes, stage by stage as the pipeline declares them;
identical tasks across cells and configs are one node.

A task kind derives its params (exactly what its output depends on) and its file inputs from the
cell; facts that must not change the output (where to import the model from) go to the node's
context instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from trtbuild.errors import UsageError
from trtbuild.plan.graph import CellArtifact, CellPlan, Dep, Graph, TaskNode, Use
from trtbuild.spec.model import Cell, Spec
from trtbuild.tasks.pipeline import PIPELINE, From, Pipeline


def resolve(specs: Iterable[Spec], only: Iterable[str] = (), pipeline: Pipeline = PIPELINE) -> Graph:
    specs = list(specs)
    graph = Graph(pipeline)
    wanted = set(only)
    for spec in specs:
        for cell in spec.cells:
            if not wanted or cell.name in wanted:
                _resolve_cell(cell.view, cell, graph)
    _name_nodes(graph)
    if wanted:
        known = {cell.name for spec in specs for cell in spec.cells}
        unknown = sorted(wanted - known)
        if unknown:
            raise UsageError(
                f"--only names no cell: {', '.join(unknown)} (cells are: {', '.join(sorted(known))})"
            )
    return graph


def _resolve_cell(spec: Spec, cell: Cell, graph: Graph) -> None:
    """The cell's tasks from its own view of the spec; the graph merges identical ones."""
    model = spec.model.name
    made: dict[str, TaskNode] = {}  # stage name -> this cell's node
    for stage in graph.pipeline.stages:
        derived = stage.kind.derive(spec, cell)
        if derived is None:
            continue
        node = TaskNode(
            # Provisional until every cell is resolved: see `_name_nodes`.
            id=f"{model}/{cell.name}/{stage.name}",
            task=stage.kind,
            model=model,
            params=derived.params,
            deps={
                name: _dep(source, made, stage.name)
                for name, source in stage.inputs.items()
                if not (source.optional and not any(s in made for s in source.stages))
            },
            files=dict(derived.files),
            context=dict(derived.context),
            cells=[cell.name],
            uses=[Use(spec.path, model, cell.name)],
        )
        made[stage.name] = graph.add(node)
    artifacts = [
        CellArtifact(output, made[stage.name].id, output)
        for stage in graph.pipeline.stages
        if stage.name in made
        for output in stage.artifacts
    ]
    graph.cells.append(CellPlan(model=model, cell=cell.name, config=spec.path, artifacts=artifacts))


def _dep(source: From, made: dict[str, TaskNode], stage: str) -> Dep:
    for name in source.stages:
        if name in made:
            return Dep(made[name].id, source.output)
    raise ValueError(
        f"pipeline: stage {stage} takes {source.output} from {source.stages}, none of them earlier"
    )


def _name_nodes(graph: Graph) -> None:
    """Each node's id in each config that uses it: `<model>/<kind>` for a shared task used by every
    planned cell of the config, else `<model>/<its first cell there>/<kind>` (a cell has one task of
    each kind, so these are unique). That is the id the config alone would give it, so its lock is
    the same whatever else is planned with it. The graph names a node as its first config does
    (model names are unique among the configs of one plan, so these ids are unique too)."""
    planned: dict[Path, set[str]] = {}
    for cell in graph.cells:
        planned.setdefault(cell.config, set()).add(cell.cell)
    shared_kinds = {stage.name for stage in graph.pipeline.stages if stage.shared}
    for node in graph.nodes.values():
        for config, uses in _uses_by_config(node).items():
            shared = node.kind in shared_kinds and planned[config] <= {use.cell for use in uses}
            model = uses[0].model
            node.names[config] = f"{model}/{node.kind}" if shared else f"{model}/{uses[0].cell}/{node.kind}"
    graph.rename({node.id: node.names[node.uses[0].config] for node in graph.nodes.values()})


def _uses_by_config(node: TaskNode) -> dict[Path, list[Use]]:
    by_config: dict[Path, list[Use]] = {}
    for use in node.uses:
        by_config.setdefault(use.config, []).append(use)
    return by_config
