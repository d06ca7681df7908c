"""A cell's graphs for debugging: the fp32 graph the precision task starts from and the one it made.

Both are task outputs in the store. Whatever of export -> simplify -> precision is not cached is run
here, through the normal executor and cache, so a later `trtbuild run` reuses it; build and validate
are not run, since triage needs neither an engine nor the validation gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trtbuild.errors import TaskError, UsageError
from trtbuild.exec.events import TaskEvent
from trtbuild.exec.local import LocalExecutor
from trtbuild.exec.protocol import RunOptions
from trtbuild.plan.graph import Graph, TaskNode
from trtbuild.plan.plan import Plan, make_plan, preflight
from trtbuild.spec.loader import load_specs
from trtbuild.spec.model import Cell, Spec
from trtbuild.store import ActionResult
from trtbuild.tasks import precision, reference
from trtbuild.tasks.pipeline import PIPELINE
from trtbuild.tasks.reference import ReferenceParams


@dataclass
class CellGraphs:
    spec: Spec  # the cell's own view of the config
    cell: Cell
    reference: Path  # the fp32 graph (the precision task's input)
    candidate: Path  # the cell's precision graph
    exported: Path  # the exporter's graph: onnxsim drops the node metadata where dynamo records scopes
    reference_params: ReferenceParams  # inputs, profiles, samples, seed: triage feeds what validate feeds
    reference_files: dict[str, Path]  # the reference's file inputs: the .npz files of inputs' values


def cell_graphs(
    config: Path,
    cell_name: str,
    *,
    cache_dir: Path | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
) -> CellGraphs:
    specs = load_specs([config], checks=PIPELINE.spec_checks)
    spec = specs[0]
    cell = next((c for c in spec.cells if c.name == cell_name), None)
    if cell is None:
        names = ", ".join(c.name for c in spec.cells)
        raise UsageError(f"{config} has no cell named {cell_name!r}; its cells are: {names}")
    if cell.precision == "fp32":
        # Checked before running anything: an fp32 cell's graph is the fp32 graph itself.
        raise UsageError(
            f"cell {cell_name} is fp32: its graph is the fp32 graph, there is nothing to compare; "
            "name a fp16, bf16, int8 or fp8 cell"
        )
    the_plan = make_plan([config], cache_dir=cache_dir, only=[cell_name])
    precision_node = _node(the_plan.graph, precision.NAME, cell_name)
    reference_node = _node(the_plan.graph, reference.NAME, cell_name)
    upstream = precision_node.deps[precision.GRAPH].node_id
    chain = the_plan.graph.upstream([precision_node.id])
    results = _results(the_plan, chain, on_event)
    store = the_plan.store
    return CellGraphs(
        spec=cell.view,
        cell=cell,
        reference=store.local_path(results[upstream].outputs[precision.GRAPH].hash),
        candidate=store.local_path(results[precision_node.id].outputs[precision.GRAPH].hash),
        exported=store.local_path(results[chain[0]].outputs[precision.GRAPH].hash),
        reference_params=reference_node.params,
        reference_files=dict(reference_node.files),
    )


def _node(graph: Graph, kind: str, cell_name: str) -> TaskNode:
    return next(n for n in graph.nodes.values() if n.kind == kind and cell_name in n.cells)


def _results(
    the_plan: Plan, node_ids: list[str], on_event: Callable[[TaskEvent], None] | None
) -> dict[str, ActionResult]:
    cached = {
        node_id: status.result
        for node_id in node_ids
        if (status := the_plan.statuses[node_id]).result is not None
    }
    if len(cached) == len(node_ids):
        return cached
    # Run only this chain: a graph without cells materialises nothing under build/.
    chain = Graph(the_plan.graph.pipeline, {node_id: the_plan.graph.nodes[node_id] for node_id in node_ids})
    statuses = {i: the_plan.statuses[i] for i in node_ids}
    sub_plan = Plan(the_plan.specs, chain, statuses, the_plan.store, the_plan.hasher)
    preflight(sub_plan)
    options = RunOptions(out_dir=Path("build"))
    executor = LocalExecutor(chain, the_plan.store, the_plan.hasher, options, on_event)
    for event in executor.run():
        if event.state == "failed":
            raise TaskError(f"{event.id} failed: {event.reason}", list(event.details))
        if event.state == "skipped":
            raise TaskError(f"{event.id} was skipped: {event.reason}")
    return executor.results
