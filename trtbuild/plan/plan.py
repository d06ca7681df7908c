"""A plan: the specs, their task graph, and which tasks are cached and which must run (and why)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import ConfigError, Problem, UsageError
from trtbuild.plan.graph import Graph, TaskNode
from trtbuild.plan.resolver import resolve
from trtbuild.plan.status import NodeStatus, plan_status
from trtbuild.spec.loader import load_specs
from trtbuild.spec.model import Spec
from trtbuild.store import CacheStore, FileHasher, open_store
from trtbuild.store.remote.settings import RemoteSettings
from trtbuild.tasks.base import TaskKind
from trtbuild.tasks.pipeline import PIPELINE, Pipeline


@dataclass
class Plan:
    specs: list[Spec]
    graph: Graph
    statuses: dict[str, NodeStatus]
    store: CacheStore
    hasher: FileHasher  # the user's files, by content (a stat cache under the cache dir)

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
    for kind, spec, nodes in preflight_checks(plan):
        problems += kind.preflight(spec, nodes)
    raise_problems(problems)


def preflight_checks(plan: Plan) -> list[tuple[TaskKind[Any], Spec, list[TaskNode]]]:
    """The preflights to run: each kind with tasks to run, with its spec and those tasks (the
    executor runs them in a worker process, `run` does not import what they import)."""
    checks: list[tuple[TaskKind[Any], Spec, list[TaskNode]]] = []
    for spec in plan.specs:
        for stage in plan.graph.pipeline.stages:
            nodes = plan.nodes_to_run(spec, stage.name)
            if nodes:
                checks.append((stage.kind, spec, nodes))
    return checks


def raise_problems(problems: list[Problem]) -> None:
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))  # kinds that share a check report it once


def make_plan(
    configs: Iterable[Path | str],
    *,
    cache_dir: Path | None = None,
    only: Sequence[str] = (),
    use_cache: bool = True,
    pipeline: Pipeline = PIPELINE,
    remote: RemoteSettings | None = None,
    store: CacheStore | None = None,
    fetch: bool = True,
) -> Plan:
    """Load the configs, resolve their task graph and look every task up in the cache (``store``,
    else the local cache at ``cache_dir`` behind ``remote``'s shared cache, if any)."""
    store = store if store is not None else open_store(cache_dir, remote)
    # --no-cache trusts nothing from the cache: not even which configs passed the schema before.
    validated = store.validated_documents() if use_cache else None
    parsed = store.parsed_configs() if use_cache else None
    specs = load_specs(configs, checks=pipeline.spec_checks, validated=validated, parsed=parsed)
    graph = resolve(specs, only, pipeline)
    try:
        store.root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"cannot use {store.root} as the cache: {error.strerror or error}; "
            "pass --cache-dir DIR (or set TRTBUILD_CACHE_DIR) to a writable folder"
        ) from error
    hasher = store.file_hasher()
    return Plan(
        specs, graph, plan_status(graph, store, hasher, use_cache=use_cache, fetch=fetch), store, hasher
    )
