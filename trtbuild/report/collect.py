"""What a report says about each cell, gathered from the plan, the run's events and the store.

The document is a pure function of what is in the cache for the plan's keys, so it is stable: a
run that only hits the cache writes the same bytes as the run that built everything, and
`trtbuild report` writes them too. That is why a task's state here is the state of its result
("built", whether it ran now or earlier — "seconds" is always the time it took when it ran) and
not this run's ran/cached, which the run's --json output and its closing table carry instead.
The plan may cover more cells than the run did (`run --only`): a report lists every cell of its
configs, and those the run left out are shown as the local cache holds them; a task whose result
only a remote cache holds (planned without fetching) is "not fetched", never read.
Artifact contents come from the store by hash, never from build/, which may hold files of an
earlier run.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from trtbuild.errors import StoreError
from trtbuild.exec.events import TaskEvent
from trtbuild.plan.graph import CellPlan, TaskNode
from trtbuild.plan.lock import REPRODUCIBILITY
from trtbuild.plan.plan import Plan
from trtbuild.spec.model import Cell
from trtbuild.store import ActionResult, CacheStore
from trtbuild.tasks.base import DamagedGate, checked_gate
from trtbuild.tasks.precision_record import RECORD

# Bump when the document's layout or the way md/html render it changes: report.html is redrawn only
# when report.json changes, so a new renderer must change the document to take effect.
# 2: the config by its absolute path, in report.md's header too; grouped notes; each cell's
# low_precision (precision.json); 3: each cell's not_byte_reproducible tasks, with a note
REPORT_FORMAT = 3
# A task's result: built (now or in an earlier run), failed or skipped in this run, or not built;
# or held by a remote cache only, not downloaded (a cell `run --only` left out).
BUILT, FAILED, SKIPPED, NOT_BUILT, NOT_FETCHED = "built", "failed", "skipped", "not built", "not fetched"

Document = dict[str, Any]


def collect(
    plan: Plan, events: Sequence[TaskEvent] | None, known: Mapping[str, ActionResult] | None = None
) -> dict[str, Document]:
    """Model name -> its report document. `events` None (`trtbuild report`): what the cache holds.
    Events are matched to the plan's tasks by model, kind and cell, not by id: a run of some cells
    names a shared task after the first of its cells that it planned. `known`: the run's results
    by its task ids (the executor's), used as they are: a Ray run's nodes published the results of
    tasks whose outputs the driver does not need, and reading them from the store downloaded every
    one of them from the remote cache."""
    by_id = _events_by_node(plan, events or ())
    results = _results(plan, by_id, known or {})
    unfetched = _not_fetched(plan, by_id, results)
    for node_id in unfetched:
        del results[node_id]
    cells_of = {(str(spec.path), cell.name): cell for spec in plan.specs for cell in spec.cells}
    documents: dict[str, Document] = {}
    for cell_plan in plan.graph.cells:
        document = documents.setdefault(cell_plan.model, _new_document(cell_plan.model))
        spec_cell = cells_of.get((str(cell_plan.config), cell_plan.cell))
        nodes = [
            node
            for node in plan.graph.nodes.values()
            if node.model == cell_plan.model and cell_plan.cell in node.cells
        ]
        nodes = _in_stage_order(nodes, [stage.name for stage in plan.graph.pipeline.stages])
        record = _cell(cell_plan, spec_cell, nodes, results, (by_id, unfetched), plan.store)
        # Absolute: report.html is read from a browser, a CI artifact or another folder, where a
        # path relative to the current directory (or to the report) names nothing.
        record["config"] = os.path.abspath(cell_plan.config)
        document["cells"].append(record)
    for document in documents.values():
        _summarise(document)
    return documents


def _new_document(model: str) -> Document:
    return {"format": REPORT_FORMAT, "model": model, "cells": []}


def _events_by_node(plan: Plan, events: Sequence[TaskEvent]) -> dict[str, TaskEvent]:
    """The plan's node id -> this run's event for that task (a cell has one task of each kind)."""
    by_place = {(e.model, e.kind, cell): e for e in events for cell in e.cells}
    found: dict[str, TaskEvent] = {}
    for node in plan.graph.nodes.values():
        places = [(node.model, node.kind, cell) for cell in node.cells]
        event = next((by_place[place] for place in places if place in by_place), None)
        if event is not None:
            found[node.id] = event
    return found


def _results(
    plan: Plan, events: Mapping[str, TaskEvent], known: Mapping[str, ActionResult]
) -> dict[str, ActionResult]:
    """Node id -> its action result, for every node whose output exists now. A task this run did
    not finish has none, whatever the cache held when planning; one it did not plan (a cell left
    out by --only) has what the cache holds."""
    results: dict[str, ActionResult] = {}
    for node_id, status in plan.statuses.items():
        event = events.get(node_id)
        if event is not None and (event.state not in ("ran", "cached") or event.key is None):
            continue
        if status.result is not None and (event is None or event.key == status.key):
            results[node_id] = status.result
        elif event is not None and event.key is not None:
            # Ran in this run, or hit the cache only once an upstream reproduced its old output.
            outputs = plan.graph.nodes[node_id].task.outputs
            result = known.get(event.id)
            if result is None:
                result = plan.store.get_action(event.key, outputs=outputs, task=node_id)
            if result is not None:
                results[node_id] = result
    return results


def _not_fetched(
    plan: Plan, events: Mapping[str, TaskEvent], results: Mapping[str, ActionResult]
) -> set[str]:
    """The nodes this run did not run whose result's blobs are not in the local cache: a remote
    cache's hit, planned without downloading. Their outputs cannot be read, so they are reported
    as not fetched rather than as built with nothing to show (a false "not validated")."""
    return {
        node_id
        for node_id, result in results.items()
        if node_id not in events and not all(plan.store.has_blob(d.hash) for d in result.outputs.values())
    }


def _cell(
    cell_plan: CellPlan,
    spec_cell: Cell | None,
    nodes: list[TaskNode],
    results: Mapping[str, ActionResult],
    seen: tuple[Mapping[str, TaskEvent], set[str]],
    store: CacheStore,
) -> Document:
    events, unfetched = seen
    tasks = [_task(node, cell_plan.cell, results, events, unfetched) for node in nodes]
    artifacts: dict[str, Any] = {}
    for artifact in cell_plan.artifacts:
        result = results.get(artifact.node_id)
        digest = result.outputs.get(artifact.output) if result else None
        artifacts[artifact.filename] = (
            {"bytes": digest.size, "hash": digest.hash} if digest is not None else None
        )
    validation = _read_json(store, results, cell_plan, "validation.json")
    engine = _read_json(store, results, cell_plan, "engine.json")
    low_precision = _read_json(store, results, cell_plan, RECORD)
    built = all(task["state"] == BUILT for task in tasks)
    failed = any(task["state"] == FAILED for task in tasks)
    remote = all(task["state"] in (BUILT, NOT_FETCHED) for task in tasks)  # and not all built
    return {
        "cell": cell_plan.cell,
        "precision": spec_cell.precision if spec_cell else None,
        "values": _clean(dict(spec_cell.values)) if spec_cell else {},
        "status": BUILT if built else (FAILED if failed else (NOT_FETCHED if remote else NOT_BUILT)),
        "verdict": _verdict(validation) if validation else "not validated",
        "validation": _validation(validation) if validation else None,
        "gate_failures": _clean(validation.get("failures", [])) if validation else [],
        "engine": _engine(engine, artifacts.get("model.engine")) if engine else None,
        # What the graph computes in, from precision.json; None for fp32 (nothing converted).
        "low_precision": _low_precision(low_precision) if low_precision else None,
        "not_byte_reproducible": _not_byte_reproducible(nodes, results),
        "artifacts": artifacts,
        "tasks": tasks,
        "seconds": round(sum(task["seconds"] or 0.0 for task in tasks), 3),
    }


def _not_byte_reproducible(nodes: list[TaskNode], results: Mapping[str, ActionResult]) -> list[Document]:
    """The cell's tasks whose result says their bytes may not repeat from the same inputs (an int8
    engine, a build without the reproducibility recipe), with why: the lock and `verify` know it,
    and so must whoever reads the report before shipping the engine."""
    found = []
    for node in nodes:
        result = results.get(node.id)
        record = result.meta.get(REPRODUCIBILITY) if result is not None else None
        if isinstance(record, dict) and record.get("byte_reproducible") is False:
            reason = str(record.get("reason") or "marked not byte-reproducible")
            found.append({"task": node.id, "kind": node.kind, "reason": reason})
    return found


def _in_stage_order(nodes: list[TaskNode], stages: list[str]) -> list[TaskNode]:
    order = {kind: index for index, kind in enumerate(stages)}
    return sorted(nodes, key=lambda node: (order.get(node.kind, len(order)), node.kind, node.id))


def _task(
    node: TaskNode,
    cell: str,
    results: Mapping[str, ActionResult],
    events: Mapping[str, TaskEvent],
    unfetched: set[str],
) -> Document:
    result = results.get(node.id)
    event = events.get(node.id)
    record: Document = {
        "id": node.id,
        "kind": node.kind,
        # Export and simplify are usually shared by every cell: they ran once for all of them.
        "shared_with": sorted(other for other in node.cells if other != cell),
    }
    if result is not None:
        seconds = result.meta.get("seconds")
        record.update(state=BUILT, seconds=float(seconds) if isinstance(seconds, int | float) else None)
    elif event is not None and event.state in (FAILED, SKIPPED):
        record.update(
            state=event.state,
            seconds=round(event.seconds, 3) if event.state == FAILED else None,
            reason=event.reason,
        )
    else:
        record.update(state=NOT_FETCHED if node.id in unfetched else NOT_BUILT, seconds=None)
    return record


def _read_json(
    store: CacheStore, results: Mapping[str, ActionResult], cell_plan: CellPlan, filename: str
) -> Document | None:
    for artifact in cell_plan.artifacts:
        if artifact.filename != filename:
            continue
        result = results.get(artifact.node_id)
        digest = result.outputs.get(artifact.output) if result else None
        if digest is None:
            return None
        try:
            loaded = json.loads(store.read_verified(digest.hash))
        except (StoreError, ValueError):
            return None  # collected after a gc: report the cell as not built rather than fail
        return loaded if isinstance(loaded, dict) else None
    return None


def _verdict(validation: Document) -> str:
    """The gate's verdict as the run takes it (tasks/base.py: checked_gate), never a default."""
    try:
        return str(checked_gate(validation)["verdict"])
    except DamagedGate:
        return "damaged"


def _validation(validation: Document) -> Document:
    candidates: dict[str, Any] = {}
    for name, candidate in sorted(validation.get("candidates", {}).items()):
        if candidate.get("status") == "skipped":
            candidates[name] = {"status": "skipped", "reason": candidate.get("reason", "")}
        else:
            candidates[name] = {
                "status": "compared",
                "passed": bool(candidate.get("passed")),
                "outputs": _clean(candidate.get("outputs", {})),
            }
    return {
        "reference": validation.get("reference"),
        "samples": validation.get("samples"),
        "tolerance": _clean(validation.get("tolerance", {})),
        "candidates": candidates,
    }


def _low_precision(record: Document) -> Document | None:
    if "share" not in record:
        return None
    keys = ("low_precision_dtype", "method", "nodes", "weights", "share", "kept")
    cleaned: Document = _clean({key: record[key] for key in keys if key in record})
    return cleaned


def _engine(engine: Document, artifact: Document | None) -> Document:
    return {
        "backend": engine.get("backend"),
        "backend_version": engine.get("backend_version"),
        "targets": engine.get("targets", []),
        "bytes": artifact["bytes"] if artifact else engine.get("engine_bytes"),
    }


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities (a broken candidate's metrics) become None — shown as n/a."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _summarise(document: Document) -> None:
    cells = document["cells"]
    axes: list[str] = []
    for cell in cells:
        axes += [axis for axis in cell["values"] if axis not in axes]
    document["axes"] = axes
    verdicts = [cell["verdict"] for cell in cells]
    document["summary"] = {v: verdicts.count(v) for v in sorted(set(verdicts))}
