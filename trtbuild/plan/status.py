"""Which tasks are cached and which must run, and why: decided by key lookups, nothing is run.

A node's key needs the content hashes of its inputs; an input that another task has yet to make is
unknown until that task runs, so such a node is "run" with the reason "after <upstream>" — once
the upstream runs, the executor recomputes the key, and an upstream that reproduced the same bytes
lets the node hit the cache after all (early cut-off, as in Bazel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from trtbuild.plan.graph import Graph, TaskNode
from trtbuild.plan.keys import key_material, task_key
from trtbuild.store import ActionResult, CacheStore, FileHasher

State = Literal["cached", "run"]


@dataclass
class NodeStatus:
    node_id: str
    state: State
    reason: str
    key: str | None = None
    material: dict[str, Any] | None = None
    result: ActionResult | None = None


def input_hashes(
    node: TaskNode, hasher: FileHasher, results: Mapping[str, ActionResult]
) -> dict[str, str] | None:
    """Content hash of each input, or None when an upstream output is not known yet."""
    hashes = {name: hasher.hash_file(path) for name, path in node.files.items()}
    for name, dep in node.deps.items():
        upstream = results.get(dep.node_id)
        if upstream is None:
            return None
        hashes[name] = upstream.outputs[dep.output].hash
    return hashes


def node_key(
    node: TaskNode, hasher: FileHasher, results: Mapping[str, ActionResult]
) -> tuple[str, dict[str, Any]] | None:
    hashes = input_hashes(node, hasher, results)
    if hashes is None:
        return None
    kind = node.task
    material = key_material(kind.name, kind.version, node.params_json, hashes, kind.tools(node.params))
    return task_key(material), material


def plan_status(
    graph: Graph, store: CacheStore, hasher: FileHasher, *, use_cache: bool = True, fetch: bool = True
) -> dict[str, NodeStatus]:
    """Each node's status; ``fetch=False`` leaves a remote cache's hits where they are (a plan
    that runs nothing downloads nothing)."""
    statuses: dict[str, NodeStatus] = {}
    results: dict[str, ActionResult] = {}
    for node in graph.nodes.values():
        keyed = node_key(node, hasher, results)
        if keyed is None:
            waiting = [d.node_id for d in node.deps.values() if d.node_id not in results]
            statuses[node.id] = NodeStatus(node.id, "run", f"after {', '.join(dict.fromkeys(waiting))}")
            continue
        key, material = keyed
        result = (
            store.get_action(key, outputs=node.task.outputs, task=node.id, fetch=fetch) if use_cache else None
        )
        if result is None:
            reason = "not in cache" if use_cache else "--no-cache"
            statuses[node.id] = NodeStatus(node.id, "run", reason, key, material)
        else:
            results[node.id] = result
            statuses[node.id] = NodeStatus(node.id, "cached", "cached", key, material, result)
    return statuses
