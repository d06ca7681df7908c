"""The lock file: what each task of a config was built from and what it made.

`configs/resnet.yaml` -> `configs/resnet.lock`, JSON with sorted keys and no timestamps, so it is
byte-identical when nothing changed and a git diff shows exactly what did: a param, an input's hash,
a tool's version, an output's hash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild import files
from trtbuild.plan.graph import Graph
from trtbuild.store import ActionResult

LOCK_VERSION = 1


def lock_path(config: Path) -> Path:
    return config.with_suffix(".lock")


def config_tasks(graph: Graph, config: Path) -> list[str]:
    """Ids of the tasks the config's cells use, in graph order: every stage's, whether or not it
    leaves a file under build/."""
    return list(cells_by_task(graph, config))


def cells_by_task(graph: Graph, config: Path) -> dict[str, list[str]]:
    """Task id -> the config's cells that use it, in graph order."""
    mine = {(cell.model, cell.cell) for cell in graph.cells if cell.config == config}
    cells: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        used_by = sorted(cell for cell in node.cells if (node.model, cell) in mine)
        if used_by:
            cells[node.id] = used_by
    return cells


def lock_entry(
    material: Mapping[str, Any], key: str, result: ActionResult, cells: list[str]
) -> dict[str, Any]:
    return {
        "kind": material["kind"],
        "version": material["version"],
        "scheme": material["scheme"],
        "key": key,
        "params": material["params"],
        "tools": material["tools"],
        "inputs": material["inputs"],
        "outputs": {name: {"hash": d.hash, "size": d.size} for name, d in sorted(result.outputs.items())},
        "cells": cells,
    }


def render(config: Path, tasks: Mapping[str, Mapping[str, Any]]) -> str:
    document = {"version": LOCK_VERSION, "config": config.name, "tasks": dict(tasks)}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write atomically; leave the file (and its mtime) alone when the content is the same."""
    # No fsync: a lock lost in a crash reads as none (see read_lock) and the next run rewrites it.
    return files.write_if_changed(path, text, fsync=False)


@dataclass(frozen=True)
class Lock:
    path: Path
    tasks: dict[str, dict[str, Any]]


def read_lock(path: Path) -> Lock | None:
    """The lock at `path`, or None when there is none. A damaged lock reads as none (it is rewritten
    by the next successful run) rather than stopping the build."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("version") != LOCK_VERSION:
        return None
    tasks = document.get("tasks")
    return Lock(path, tasks) if isinstance(tasks, dict) else None
