"""The task graph: nodes deduplicated by what they compute, in dependency order."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.tasks.base import JsonDict, TaskKind, params_json
from trtbuild.tasks.pipeline import PIPELINE, Pipeline


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, tuples as lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class Dep:
    """An input that is another task's output."""

    node_id: str
    output: str


@dataclass(frozen=True)
class Use:
    """A matrix cell of a config that uses a node. Identical tasks of several configs are one node,
    whose `model` is its first config's and whose `cells` are cell names of any config: what each
    config alone would see is in its uses (`Graph.view`)."""

    config: Path
    model: str
    cell: str


@dataclass(eq=False)
class TaskNode:
    id: str
    task: TaskKind[Any]  # the kind's unit: derive, tools, preflight, run
    model: str
    params: Any  # the kind's frozen params dataclass
    deps: dict[str, Dep] = field(default_factory=dict)  # input name -> upstream output
    files: dict[str, Path] = field(default_factory=dict)  # input name -> file hashed by content
    context: dict[str, Any] = field(default_factory=dict)  # not keyed: must not change the output
    cells: list[str] = field(default_factory=list)  # the matrix cells that use this node
    uses: list[Use] = field(default_factory=list)  # every (config, model, cell) that uses it, in order
    # config -> the id that config alone gives this node (its lock's id for it); set by the resolver.
    names: dict[Path, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.task.name

    @functools.cached_property
    def params_json(self) -> JsonDict:
        """The params' canonical JSON form: what enters the key, the lock and explanations."""
        return params_json(self.params)

    def identity(self) -> str:
        """What the node computes, independent of its id: equal identities are one node."""
        body = {
            "kind": self.kind,
            "params": self.params_json,
            "deps": {name: [dep.node_id, dep.output] for name, dep in self.deps.items()},
            "files": {name: str(path) for name, path in self.files.items()},
        }
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True)
class CellArtifact:
    """A file materialised under build/<model>/<cell>/: which node's output it is."""

    filename: str
    node_id: str
    output: str


@dataclass
class CellPlan:
    model: str
    cell: str
    config: Path
    artifacts: list[CellArtifact]


@dataclass
class Graph:
    pipeline: Pipeline = PIPELINE  # the stages the nodes were resolved from
    nodes: dict[str, TaskNode] = field(default_factory=dict)  # insertion order is a topological order
    cells: list[CellPlan] = field(default_factory=list)
    _by_identity: dict[str, str] = field(default_factory=dict)
    _members: dict[str, tuple[set[str], set[Use]]] = field(default_factory=dict, repr=False)

    def add(self, node: TaskNode) -> TaskNode:
        """Add `node`, or return the existing node that computes the same thing (merging cells)."""
        for dep in node.deps.values():
            if dep.node_id not in self.nodes:
                raise ValueError(f"{node.id}: dependency {dep.node_id} is not in the graph yet")
        identity = node.identity()
        existing_id = self._by_identity.get(identity)
        if existing_id is not None:
            existing = self.nodes[existing_id]
            self._merge_uses(existing, node)
            return existing
        if node.id in self.nodes:
            raise ValueError(f"two different tasks are both named {node.id}")
        self.nodes[node.id] = node
        self._by_identity[identity] = node.id
        return node

    def _merge_uses(self, existing: TaskNode, node: TaskNode) -> None:
        """Add `node`'s cells and uses to `existing`'s, each once. Looked up in sets kept beside the
        lists: scanning the lists made a matrix's shared tasks quadratic (2.2 million comparisons
        for 1,000 cells)."""
        cells, uses = self._members.get(existing.id, (set(), set()))
        if len(cells) != len(existing.cells) or len(uses) != len(existing.uses):
            cells, uses = set(existing.cells), set(existing.uses)  # first merge, or lists changed since
        for cell in node.cells:
            if cell not in cells:
                cells.add(cell)
                existing.cells.append(cell)
        for use in node.uses:
            if use not in uses:
                uses.add(use)
                existing.uses.append(use)
        self._members[existing.id] = (cells, uses)

    def upstream(self, node_ids: Iterable[str]) -> list[str]:
        """The given nodes and everything they depend on, in graph (topological) order."""
        wanted = set(node_ids)
        for node in reversed(list(self.nodes.values())):
            if node.id in wanted:
                wanted.update(dep.node_id for dep in node.deps.values())
        return [node_id for node_id in self.nodes if node_id in wanted]

    def ids_in(self, config: Path) -> dict[str, str]:
        """The id `config` alone gives each node its cells use -> the node's id here, in graph order:
        a config's lock must not depend on the other configs planned with it."""
        return {node.names[config]: node.id for node in self.nodes.values() if config in node.names}

    def view(self, config: Path) -> Graph:
        """The nodes `config`'s cells use, as that config alone would plan them: copies under its
        ids (`ids_in`), with its own model and cells."""
        ids = self.ids_in(config)
        view = Graph(self.pipeline)
        for node_id in ids.values():
            node = self.nodes[node_id]
            uses = [use for use in node.uses if use.config == config]
            view.nodes[node_id] = dataclasses.replace(
                node,
                model=uses[0].model,
                cells=[use.cell for use in uses],
                uses=uses,
                deps=dict(node.deps),
                names={config: node.names[config]},
            )
        view.cells = [
            dataclasses.replace(cell, artifacts=list(cell.artifacts))
            for cell in self.cells
            if cell.config == config
        ]
        view.rename({node_id: task for task, node_id in ids.items()})
        return view

    def rename(self, names: dict[str, str]) -> None:
        """Give nodes new ids (old id -> new id), updating every reference to them."""
        renamed: dict[str, TaskNode] = {}
        for node in self.nodes.values():
            node.id = names.get(node.id, node.id)
            node.deps = {
                name: Dep(names.get(d.node_id, d.node_id), d.output) for name, d in node.deps.items()
            }
            if node.id in renamed:
                raise ValueError(f"two different tasks would both be named {node.id}")
            renamed[node.id] = node
        self.nodes = renamed
        self._members = {}
        self._by_identity = {identity: names.get(old, old) for identity, old in self._by_identity.items()}
        for cell in self.cells:
            cell.artifacts = [
                CellArtifact(a.filename, names.get(a.node_id, a.node_id), a.output) for a in cell.artifacts
            ]
