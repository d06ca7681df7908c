"""The lock file: what each task of a config was built from and what it made.

`configs/resnet.yaml` -> `configs/resnet.lock`, JSON with sorted keys and no timestamps, so it is
byte-identical when nothing changed and a git diff shows exactly what did: a param, an input's hash,
a tool's version, an output's hash.

Formats (`format_version`; format 1 spelt it `version`):
- 1: task entries with kind, version, scheme, key, params, tools, inputs, outputs, cells.
- 2: the same entries, plus `reproducibility` where the task's result said whether its bytes repeat
  (`{"byte_reproducible": bool, "reason": str, "environment": str}`; not key material).
Migration: a format-1 lock is read as it is (its entries have format 2's shape) and rewritten as
format 2 by the next successful plain `run`; `--locked` refuses it until then, since a check must
not pass against a lock that the run would rewrite. A newer format than FORMAT_VERSION is refused:
rewriting it would drop what this trtbuild does not know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild import files
from trtbuild.errors import Location, NewerLockFormat, Problem, UnreadableLock
from trtbuild.plan.graph import Graph
from trtbuild.store import ActionResult

FORMAT_VERSION = 2  # what this trtbuild writes, and the newest it reads
OLDEST_FORMAT = 1
REPRODUCIBILITY = "reproducibility"  # the result meta's field the lock copies (see the docstring)
CONFLICT_MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})(\s|$)", re.MULTILINE)


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
        **_reproducibility(result),
    }


def _reproducibility(result: ActionResult) -> dict[str, Any]:
    """The result's word on whether its bytes repeat, if it gave one: copied so that `verify` and
    `--locked` can tell a known non-reproducible output from one that should not have changed."""
    record = result.meta.get(REPRODUCIBILITY)
    return {REPRODUCIBILITY: record} if isinstance(record, dict) else {}


def render(config: Path, tasks: Mapping[str, Mapping[str, Any]]) -> str:
    document = {"format_version": FORMAT_VERSION, "config": config.name, "tasks": dict(tasks)}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write atomically; leave the file (and its mtime) alone when the content is the same."""
    # No fsync: a lock lost in a crash reads as none (see read_lock) and the next run rewrites it.
    return files.write_if_changed(path, text, fsync=False)


@dataclass(frozen=True)
class Lock:
    path: Path
    tasks: dict[str, dict[str, Any]]
    format_version: int = FORMAT_VERSION


def read_lock(path: Path, config: Path | None = None) -> Lock | None:
    """The lock at `path` (of `config`, named in hints), or None when there is none. Raises
    UnreadableLock (with line and column) for a file that is not a lock document, NewerLockFormat
    for a newer format."""
    # Today's lock reads as "no lock" when damaged would let `--locked` pass against nothing and
    # `plan --explain` measure against nothing: a merge conflict in it must be seen.
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise _unreadable(path, config, 1, 1, f"cannot be read ({error})") from error
    marker = CONFLICT_MARKER.search(text)
    if marker is not None:
        line = text.count("\n", 0, marker.start()) + 1
        raise _unreadable(path, config, line, 1, f"git merge-conflict marker {marker.group(1)!r}")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise _unreadable(path, config, error.lineno, error.colno, f"not JSON: {error.msg}") from error
    return _lock_document(path, config, text, document)


def _lock_document(path: Path, config: Path | None, text: str, document: Any) -> Lock:
    if not isinstance(document, dict):
        raise _unreadable(path, config, 1, 1, f"a JSON {type(document).__name__}, not a lock (an object)")
    version = document.get("format_version", document.get("version"))
    if not isinstance(version, int) or isinstance(version, bool) or version < OLDEST_FORMAT:
        raise _unreadable(
            path, config, *_line_of(text, "format_version"), f"no lock format version: {version!r}"
        )
    if version > FORMAT_VERSION:
        raise NewerLockFormat(
            Problem(
                f"lock format {version} is newer than this trtbuild reads (format {FORMAT_VERSION} at most)",
                Location(path, *_line_of(text, "format_version")),
                hint="upgrade trtbuild to the version that wrote this lock",
            )
        )
    tasks = document.get("tasks")
    if not isinstance(tasks, dict):
        raise _unreadable(path, config, *_line_of(text, "tasks"), "`tasks` is not an object of task entries")
    for task_id, entry in tasks.items():
        wrong = _entry_problem(entry)
        if wrong:
            raise _unreadable(path, config, *_line_of(text, task_id), f"task {task_id}: {wrong}")
    return Lock(path, tasks, version)


def _entry_problem(entry: Any) -> str:
    """What makes a task entry unusable, or "": the comparisons read its key and output hashes."""
    if not isinstance(entry, dict):
        return "not an object"
    if not isinstance(entry.get("key"), str):
        return "no `key` string"
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict) or not all(
        isinstance(d, dict) and isinstance(d.get("hash"), str) for d in outputs.values()
    ):
        return "`outputs` is not an object of {name: {hash, size}}"
    return ""


def _line_of(text: str, name: str) -> tuple[int, int]:
    """Line and column of the first `"name"` in the text, else 1:1."""
    at = text.find(json.dumps(name))
    if at < 0:
        return 1, 1
    line_start = text.rfind("\n", 0, at) + 1
    return text.count("\n", 0, at) + 1, at - line_start + 1


def _unreadable(path: Path, config: Path | None, line: int, column: int, what: str) -> UnreadableLock:
    return UnreadableLock(
        Problem(
            f"the lock is unreadable: {what}",
            Location(path, line, column),
            hint=f"write a new lock with `trtbuild run {config or 'CONFIG'}` (without --locked; it "
            "replaces this file), check it with `git diff`, and commit it",
        )
    )


def config_lock(config: Path) -> Lock | None:
    """The lock beside `config` (see read_lock)."""
    return read_lock(lock_path(config), config)
