"""Why a task must run, said precisely: the param, input or tool that differs from the lock.

`export.opset: 17 -> 18`, `input changed: models/net.py`, `onnxsim 0.8.1 -> 0.8.2`, `not in cache`.
The lock is the record of the last successful build, so it is what "changed" is measured against;
without one, a task that is not cached simply is `not in cache`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from trtbuild.plan.graph import Graph, TaskNode
from trtbuild.plan.keys import key_material
from trtbuild.plan.lock import Lock, older_format
from trtbuild.plan.status import NodeStatus
from trtbuild.spec.model import Spec
from trtbuild.store import FileHasher
from trtbuild.tasks.code import CodeIdentity, code_named_by


def known_material(node: TaskNode, hasher: FileHasher, status: NodeStatus) -> dict[str, Any]:
    """The key material as far as it is known before running anything: complete when the node's key
    is known, else everything but the hashes of inputs that upstream tasks have yet to make."""
    if status.material is not None:
        return status.material
    inputs = {name: hasher.hash_file(path) for name, path in node.files.items()}
    return key_material(node.kind, node.task.version, node.params_json, inputs, node.task.tools(node.params))


def differences(node: TaskNode, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between a lock entry and the current material, one readable line each."""
    lines: list[str] = []
    if old.get("scheme") != new["scheme"]:
        lines.append(f"keying scheme {old.get('scheme')} -> {new['scheme']}")
    if old.get("version") != new["version"]:
        lines.append(f"{node.kind} implementation version {old.get('version')} -> {new['version']}")
    for path, before, after in _changed(old.get("params", {}), new["params"], node.kind):
        lines.append(f"{path}: {_short(before)} -> {_short(after)}")
    for tool in sorted(set(old.get("tools", {})) | set(new["tools"])):
        before, after = old.get("tools", {}).get(tool), new["tools"].get(tool)
        if before != after:
            lines.append(f"{tool} {_short(before)} -> {_short(after)}")
    old_inputs = old.get("inputs", {})
    for name, digest in sorted(new["inputs"].items()):
        if old_inputs.get(name) != digest:
            lines.append(_input_line(node, name, name in old_inputs))
    lines += [
        f"input removed: {_input_name(name)}" for name in sorted(set(old_inputs) - set(node_inputs(node)))
    ]
    return lines


def node_inputs(node: TaskNode) -> set[str]:
    return set(node.files) | set(node.deps)


def _input_line(node: TaskNode, name: str, existed: bool) -> str:
    if name in node.deps:
        return f"input changed: {name} (from {node.deps[name].node_id})"
    return f"input changed: {_input_name(name)}" if existed else f"new input: {_input_name(name)}"


def _input_name(name: str) -> str:
    """A keyed file's path as the user knows it: task kinds name such inputs `<role>:<path>`
    (`source:tinynet.py`, `calibration:img00.png`), other inputs by a plain name."""
    return name.partition(":")[2] or name


def _changed(before: Any, after: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, old, new) for every leaf that differs; lists compare as a whole."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            yield from _changed(before.get(key), after.get(key), f"{path}.{key}")
    elif before != after:
        yield path, before, after


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def explain(
    nodes: Mapping[str, TaskNode],
    statuses: Mapping[str, NodeStatus],
    hasher: FileHasher,
    locks: Mapping[str, Lock | None],
) -> dict[str, list[str]]:
    """Task id -> why it is cached or must run. `locks` maps task id -> the lock of its config."""
    reasons: dict[str, list[str]] = {}
    for node_id, node in nodes.items():
        status = statuses[node_id]
        if status.state == "cached":
            reasons[node_id] = ["cached"]
            continue
        lock = locks.get(node_id)
        entry = lock.tasks.get(node_id) if lock is not None else None
        if lock is None:
            reasons[node_id] = [status.reason]
        elif (older := older_format(lock)) is not None:  # its hashes are not comparable with ours
            reasons[node_id] = [status.reason, f"{older}: a plain `trtbuild run` rewrites it"]
        elif entry is None:
            reasons[node_id] = ["new task: not in the lock"]
        else:
            found = differences(node, entry, known_material(node, hasher, status))
            waiting = [d.node_id for d in node.deps.values() if statuses[d.node_id].state == "run"]
            if waiting and not any(line.startswith("input changed") for line in found):
                found.append(f"inputs from {', '.join(dict.fromkeys(waiting))}, which runs")
            reasons[node_id] = found or [status.reason]
    return reasons


def keyed_code(specs: Iterable[Spec], graph: Graph) -> dict[str, list[tuple[str, CodeIdentity]]]:
    """Model -> (config field, the user's code it names) for the planned cells: which files of the
    user's code the keys hash, and which installed or excluded packages the walk did not follow."""
    planned = {(cell.model, cell.cell) for cell in graph.cells}
    found: dict[str, list[tuple[str, CodeIdentity]]] = {}
    for spec in specs:
        for cell in spec.cells:
            if (spec.model.name, cell.name) not in planned:
                continue
            uses = found.setdefault(spec.model.name, [])
            # Cells share their code unless a matrix axis changes it: list each walk once.
            uses += [use for use in code_named_by(cell.view).items() if use not in uses]
    return found
