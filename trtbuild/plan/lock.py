"""The lock file: what each task of a config was built from and what it made.

`configs/resnet.yaml` -> `configs/resnet.lock` (spec/lockpath.py), JSON with sorted keys and no
timestamps, so it is byte-identical when nothing changed and a git diff shows exactly what did: a
param, an input's hash, a tool's version, an output's hash.

Formats (`format_version`; format 1 spelt it `version`):
- 1: task entries with kind, version, scheme, key, params, tools, inputs, outputs, cells.
- 2: the same entries, plus `reproducibility` where the task's result said whether its bytes repeat
  (`{"byte_reproducible": bool, "reason": str, "environment": str}`; not key material).
- 3: the same entries, with BLAKE3 content hashes (`blake3:<hex>`, inputs and outputs; were sha256
  hex) under keying scheme 3.
Migration: an older lock is read as it is and rewritten as format 3 by the next successful plain
`run`, which says so; `--locked` and `verify` refuse it until then, since a check must not pass
against a lock that the run would rewrite, and its sha256 hashes cannot be compared with BLAKE3
ones. A newer format than FORMAT_VERSION is refused: rewriting it would drop what this trtbuild
does not know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from trtbuild import files
from trtbuild.errors import Location, LockPathUnusable, NewerLockFormat, Problem, UnreadableLock
from trtbuild.plan.graph import Graph
from trtbuild.plan.keys import key_material
from trtbuild.plan.lock_fields import BLAKE3_FORMAT, MISSING, entry_problem, spell
from trtbuild.spec.lockpath import lock_path as lock_path  # re-exported: callers ask the lock module
from trtbuild.store import ActionResult

FORMAT_VERSION = 3  # what this trtbuild writes, and the newest it reads
OLDEST_FORMAT = 1
REPRODUCIBILITY = "reproducibility"  # the result meta's field the lock copies (see the docstring)
V = TypeVar("V")
CONFLICT_MARKER = re.compile(r"^(<{7}|={7}|>{7}|\|{7})(\s|$)", re.MULTILINE)


@dataclass(frozen=True)
class ConfigTasks:
    """A config's tasks under the ids its lock uses. A task shared with a config planned before it
    has that config's id in the plan's graph; the lock names it as this config alone would."""

    view: Graph  # the config's tasks, named, linked and celled as the config alone plans them
    node_ids: dict[str, str]  # the config's id -> the plan graph's id, in graph order

    def rekey(self, by_node: Mapping[str, V]) -> dict[str, V]:
        """A mapping by the plan graph's ids, for this config's tasks, by the config's ids."""
        return {task: by_node[node] for task, node in self.node_ids.items() if node in by_node}


def config_tasks(graph: Graph, config: Path) -> ConfigTasks:
    """The tasks the config's cells use: every stage's, whether or not it leaves a file under build/."""
    return ConfigTasks(graph.view(config), graph.ids_in(config))


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


def entry_material(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The key material an entry records (see lock_entry): its key is the hash of this."""
    material = key_material(entry["kind"], entry["version"], entry["params"], entry["inputs"], entry["tools"])
    return {**material, "scheme": entry["scheme"]}  # a lock may be of an older keying scheme


def _reproducibility(result: ActionResult) -> dict[str, Any]:
    """The result's word on whether its bytes repeat, if it gave one: copied so that `verify` and
    `--locked` can tell a known non-reproducible output from one that should not have changed."""
    record = result.meta.get(REPRODUCIBILITY)
    return {REPRODUCIBILITY: record} if isinstance(record, dict) else {}


def render(config: Path, tasks: Mapping[str, Mapping[str, Any]]) -> str:
    document = {"format_version": FORMAT_VERSION, "config": config.name, "tasks": dict(tasks)}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write atomically; leave the file (and its mtime) alone when the content is the same. Raises
    LockPathUnusable when it cannot be written (the tasks are cached: nothing is lost)."""
    try:
        # No fsync: a lock lost in a crash reads as none (see read_lock) and the next run rewrites it.
        return files.write_if_changed(path, text, fsync=False)
    except OSError as error:
        raise LockPathUnusable(
            Problem(
                f"{path}: cannot write the lock: {error.strerror or error}",
                hint=f"make {path} a writable file (or remove what is there) and run again: the tasks "
                "are cached",
            )
        ) from error


@dataclass(frozen=True)
class Lock:
    path: Path
    tasks: dict[str, dict[str, Any]]
    format_version: int = FORMAT_VERSION


def older_format(lock: Lock) -> str | None:
    """What makes `lock` older than this trtbuild's format, for messages; None when it is not."""
    if lock.format_version >= FORMAT_VERSION:
        return None
    hashes = " with sha256 hashes" if lock.format_version < BLAKE3_FORMAT else ""
    return f"lock format {lock.format_version}{hashes}, older than {FORMAT_VERSION} (BLAKE3 hashes)"


def read_lock(path: Path, config: Path | None = None) -> Lock | None:
    """The lock at `path` (of `config`, named in hints), or None when there is none. Raises
    UnreadableLock (with line and column) for a file that is not a lock document, NewerLockFormat
    for a newer format."""
    # Today's lock reads as "no lock" when damaged would let `--locked` pass against nothing and
    # `plan --explain` measure against nothing: a merge conflict in it must be seen.
    if path.is_dir():  # neither a lock nor one a run may replace
        raise LockPathUnusable(
            Problem(
                f"{path} is a directory, where trtbuild keeps the lock of {config or 'its config'}",
                hint=f"move or rename {path}, then run again",
            )
        )
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
        wrong = entry_problem(entry, version)
        if wrong is not None:
            where, what = wrong
            field = f"`{spell(where)}` " if where else ""
            # A missing field has no line of its own: its entry's.
            at = _line_of(text, [task_id, *(where[:-1] if what == MISSING else where)])
            raise _unreadable(path, config, *at, f"task {task_id}: {field}{what}")
    return Lock(path, tasks, version)


def _line_of(text: str, names: str | list[str | int]) -> tuple[int, int]:
    """Line and column of the first `"name"` in the text (of the last of `names`, each found after
    the one before it: a task's field), else 1:1. A missing name: where the ones before it are."""
    at = -1
    for name in [names] if isinstance(names, str) else names:
        if isinstance(name, int):  # a list item: its list's line is near enough
            continue
        found = text.find(json.dumps(name), at + 1)
        if found < 0:
            break
        at = found
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
