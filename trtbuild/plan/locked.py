"""A plan or a run measured against its config's lock: keys, output hashes, one verdict per output.

Used by `run --locked` and `plan --locked` before anything runs (on an empty cache too: a task whose
upstream is not cached is keyed with the output hashes the lock records for that upstream), by
`run --locked` again after the run, and by `verify` after its rebuild.

An output's verdict:
- identical: the bytes are the lock's;
- not byte-reproducible (inputs identical): the task's key is the lock's, the bytes differ, and the
  task marks its outputs as not byte-reproducible (in the lock or in this result), or the two builds
  ran in different build environments;
- not byte-reproducible (follows <task>/<output>): the key differs only through inputs that got a
  not-byte-reproducible verdict;
- different: anything else where the bytes differ; not rebuilt: the task has no result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trtbuild.plan.explain import differences
from trtbuild.plan.graph import Dep, Graph, TaskNode
from trtbuild.plan.keys import key_material, task_key
from trtbuild.plan.lock import (
    REPRODUCIBILITY,
    Lock,
    config_lock,
    config_tasks,
    entry_material,
    lock_path,
    older_format,
)
from trtbuild.plan.plan import Plan
from trtbuild.plan.status import NodeStatus
from trtbuild.spec.model import Spec
from trtbuild.store import ActionResult, FileHasher
from trtbuild.store.hashing import digest_hex

IDENTICAL = "identical"
NOT_REPRODUCIBLE = "not byte-reproducible (inputs identical)"
DIFFERENT = "different"
NOT_REBUILT = "not rebuilt"


def following(origin: str) -> str:
    return f"not byte-reproducible (follows {origin})"


@dataclass(frozen=True)
class Outcome:
    """A task as the plan or the run has it: its key material, its key (None while an input's hash
    is unknown: an upstream output neither the cache nor the lock has) and its result once there
    is one."""

    material: dict[str, Any]
    key: str | None
    result: ActionResult | None
    unknown: str = ""  # why the key is None


@dataclass(frozen=True)
class ArtifactVerdict:
    task: str
    output: str
    locked: str | None  # the lock's hash
    actual: str | None  # the cache's, the run's or the rebuild's (None: no result)
    verdict: str
    reason: str = ""
    origin: str = ""  # task/output whose non-reproducible bytes this verdict goes back to

    @property
    def accepted(self) -> bool:
        """Identical, or not byte-reproducible with identical inputs (directly or by following)."""
        return self.verdict not in (DIFFERENT, NOT_REBUILT)


@dataclass
class Judgement:
    """One config's tasks against its lock."""

    lock: Lock
    missing: list[str] = field(default_factory=list)  # planned, not in the lock
    stale: list[str] = field(default_factory=list)  # in the lock, no longer planned
    keys: dict[str, list[str]] = field(default_factory=dict)  # task -> why its key differs
    follows: dict[str, str] = field(default_factory=dict)  # task -> origin its key differs through
    artifacts: list[ArtifactVerdict] = field(default_factory=list)


def judge(graph: Graph, lock: Lock, task_ids: Sequence[str], outcomes: Mapping[str, Outcome]) -> Judgement:
    """Compare the config's tasks (`task_ids`, in graph order) that have an outcome with the lock.
    Lock tasks that are not in `task_ids` are `stale`; the caller says which of them count."""
    judgement = Judgement(lock)
    verdicts: dict[tuple[str, str], ArtifactVerdict] = {}
    for task_id in task_ids:
        entry, outcome = lock.tasks.get(task_id), outcomes.get(task_id)
        if entry is None:
            judgement.missing.append(task_id)
            continue
        if outcome is None:  # a task that was skipped: nothing to compare but its absence
            judgement.artifacts += _artifacts(judgement, task_id, entry, None)
            continue
        node = graph.nodes[task_id]
        _judge_key(judgement, node, entry, outcome, verdicts)
        for verdict in _artifacts(judgement, task_id, entry, outcome.result):
            verdicts[verdict.task, verdict.output] = verdict
            judgement.artifacts.append(verdict)
    judgement.stale = sorted(set(lock.tasks) - set(task_ids))
    return judgement


def _judge_key(
    judgement: Judgement,
    node: TaskNode,
    entry: Mapping[str, Any],
    outcome: Outcome,
    verdicts: Mapping[tuple[str, str], ArtifactVerdict],
) -> None:
    reasons = []
    # A lock whose recorded material was edited but not its key would pass on the key alone.
    if task_key(entry_material(entry)) != entry["key"]:
        reasons.append(f"the lock's key {short(entry['key'])} does not match its own material (edited?)")
    if outcome.key is None:  # what can be compared still is
        reasons += [f"cannot be checked: {outcome.unknown}", *differences(node, entry, outcome.material)]
    elif outcome.key != entry["key"] and not reasons:
        origin = _follows(node, entry, outcome, verdicts)
        if origin:
            judgement.follows[node.id] = origin
            return
        reasons = differences(node, entry, outcome.material) or [
            f"planned key {short(outcome.key)}, the lock's {short(entry['key'])}, though no recorded "
            "param, input or tool differs"
        ]
    if reasons:
        judgement.keys[node.id] = reasons


def _follows(
    node: TaskNode,
    entry: Mapping[str, Any],
    outcome: Outcome,
    verdicts: Mapping[tuple[str, str], ArtifactVerdict],
) -> str:
    """The origin when the key differs only through inputs whose bytes got a not-byte-reproducible
    verdict: with the lock's hashes for those inputs, the key is the lock's. Else ""."""
    locked_inputs = entry.get("inputs", {})
    changed = {
        name: dep
        for name, dep in node.deps.items()
        if outcome.material["inputs"].get(name) != locked_inputs.get(name)
    }
    origins = [_origin(verdicts.get((dep.node_id, dep.output))) for dep in changed.values()]
    if not changed or not all(origins) or not all(name in locked_inputs for name in changed):
        return ""
    inputs = {**outcome.material["inputs"], **{name: locked_inputs[name] for name in changed}}
    return origins[0] if task_key({**outcome.material, "inputs": inputs}) == entry["key"] else ""


def _origin(verdict: ArtifactVerdict | None) -> str:
    if verdict is None or verdict.verdict in (IDENTICAL, DIFFERENT, NOT_REBUILT):
        return ""
    return verdict.origin


def _artifacts(
    judgement: Judgement, task_id: str, entry: Mapping[str, Any], result: ActionResult | None
) -> list[ArtifactVerdict]:
    locked = {name: digest["hash"] for name, digest in entry["outputs"].items()}
    if result is None:
        return [
            ArtifactVerdict(task_id, name, h, None, NOT_REBUILT, "the task failed or did not run")
            for name, h in sorted(locked.items())
        ]
    made = {name: digest.hash for name, digest in result.outputs.items()}
    verdicts = []
    for name in sorted(set(locked) | set(made)):
        before, after = locked.get(name), made.get(name)
        if before == after:
            verdicts.append(ArtifactVerdict(task_id, name, before, after, IDENTICAL))
            continue
        verdict, reason, origin = _why_bytes_differ(judgement, task_id, entry, result)
        origin = origin or f"{task_id}/{name}"
        verdicts.append(ArtifactVerdict(task_id, name, before, after, verdict, reason, origin))
    return verdicts


def _why_bytes_differ(
    judgement: Judgement, task_id: str, entry: Mapping[str, Any], result: ActionResult
) -> tuple[str, str, str]:
    """(verdict, reason, origin) for an output whose bytes are not the lock's."""
    if task_id in judgement.follows:
        origin = judgement.follows[task_id]
        # Its own environment may be a second cause (validate's float results): say so too.
        reason, moved = f"its inputs differ only through {origin}", environment_change(entry, result.meta)
        return following(origin), f"{reason}; and it was {moved}" if moved else reason, origin
    if task_id in judgement.keys:
        return DIFFERENT, "; ".join(judgement.keys[task_id]) or "its key differs", ""
    unrepeatable = not_reproducible_reason(entry, result.meta)
    if unrepeatable:
        return NOT_REPRODUCIBLE, unrepeatable, ""
    return DIFFERENT, "same key (inputs, params and tools as locked), other bytes", ""


def not_reproducible_reason(entry: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """Why the task's bytes may differ between two builds from identical inputs, or "" if nothing
    says they may: the lock or this result marks them so, or the two builds' environments differ."""
    locked, new = _record(entry), _record(meta)
    for record, whose in ((new, "this build"), (locked, "the locked build")):
        if record.get("byte_reproducible") is False:
            return f"{whose}: {record.get('reason') or 'marked not byte-reproducible'}"
    return environment_change(entry, meta)


def environment_change(entry: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    """How the locked build's environment and this one's differ, or "" (same, or not recorded)."""
    before, after = _record(entry).get("environment"), _record(meta).get("environment")
    if before and after and before != after:
        return f"built in another environment ({before} -> {after})"
    return ""


def _record(holder: Mapping[str, Any]) -> Mapping[str, Any]:
    record = holder.get(REPRODUCIBILITY)
    return record if isinstance(record, dict) else {}


def planned_outcomes(
    graph: Graph,
    statuses: Mapping[str, NodeStatus],
    hasher: FileHasher,
    task_ids: Sequence[str],
    lock: Lock,
) -> dict[str, Outcome]:
    """Each task's key as far as it can be known before running: a cached task's from the cache; a
    task whose upstream is not cached is keyed with the output hashes the lock records for it."""
    outcomes: dict[str, Outcome] = {}
    for task_id in task_ids:
        node, status = graph.nodes[task_id], statuses[task_id]
        if status.state == "cached" and status.material is not None:
            outcomes[task_id] = Outcome(status.material, status.key, status.result)
            continue
        inputs = {name: hasher.hash_file(path) for name, path in node.files.items()}
        upstream = {name: _upstream_hash(dep, statuses, lock) for name, dep in node.deps.items()}
        inputs.update({name: digest for name, digest in upstream.items() if digest is not None})
        kind = node.task
        material = key_material(kind.name, kind.version, node.params_json, inputs, kind.tools(node.params))
        unknown = [_not_locked(dep, lock) for name, dep in node.deps.items() if upstream[name] is None]
        key = None if unknown else task_key(material)
        outcomes[task_id] = Outcome(material, key, None, "; ".join(unknown))
    return outcomes


def _not_locked(dep: Dep, lock: Lock) -> str:
    """Why an upstream output's hash is unknown: neither the cache nor the lock has it."""
    if dep.node_id not in lock.tasks:
        return f"{dep.node_id} is not in {lock.path.name}"
    return f"{dep.node_id}'s output {dep.output} is not in {lock.path.name}"


def _upstream_hash(dep: Dep, statuses: Mapping[str, NodeStatus], lock: Lock) -> str | None:
    result = statuses[dep.node_id].result
    if result is not None:
        return result.outputs[dep.output].hash
    digest = lock.tasks.get(dep.node_id, {}).get("outputs", {}).get(dep.output)
    return digest["hash"] if isinstance(digest, dict) else None


def short(digest: str | None) -> str:
    """A key or a content digest's first 12 hex digits (its algorithm is the lock's: not repeated)."""
    return digest_hex(digest)[:12] if digest else "nothing"


def lock_lines(judgement: Judgement, made: str) -> tuple[list[str], list[str]]:
    """(differences, notices), one line each naming its task. `made`: who holds the outputs
    compared ("the cache", "this run")."""
    name = judgement.lock.path.name
    found = [f"{task}: not in {name} (a new task)" for task in judgement.missing]
    found += [f"{task}: {reason}" for task, reasons in judgement.keys.items() for reason in reasons]
    notices = [
        f"{task}: its key differs from {name}'s only through {origin}, which is not byte-reproducible"
        for task, origin in judgement.follows.items()
    ]
    for a in judgement.artifacts:
        if a.verdict == NOT_REPRODUCIBLE:
            notices.append(
                f"{a.task}: {a.output} is not byte-reproducible ({a.reason}): {made} has "
                f"{short(a.actual)}, {name} records {short(a.locked)}"
            )
        elif a.verdict == DIFFERENT and a.task not in judgement.keys:
            found.append(
                f"{a.task}: {a.output}: {made} has {short(a.actual)}, {name} records {short(a.locked)} "
                f"({a.reason})"
            )
    return found, notices


def check_plan(the_plan: Plan, spec: Spec) -> tuple[list[str], list[str]]:
    """(differences, notices) between the plan and the lock of `spec`'s config, before running."""
    path = lock_path(spec.path)
    lock = config_lock(spec.path)
    if lock is None:
        return [f"{path}: no lock (run `trtbuild run {spec.path}` without --locked to write it)"], []
    older = older_format(lock)
    if older is not None:
        return [
            f"{path}: {older}, which this trtbuild writes: run `trtbuild run {spec.path}` once "
            "without --locked to rewrite it, and commit it"
        ], []
    return compare_plan(the_plan, spec, lock)


def compare_plan(the_plan: Plan, spec: Spec, lock: Lock) -> tuple[list[str], list[str]]:
    """(differences, notices) between the plan's tasks of `spec`'s config and `lock`: keys (with the
    lock's upstream hashes where the cache has none), cached outputs, tasks missing or stale."""
    mine = config_tasks(the_plan.graph, spec.path)
    task_ids = list(mine.view.nodes)
    statuses = mine.rekey(the_plan.statuses)
    outcomes = planned_outcomes(mine.view, statuses, the_plan.hasher, task_ids, lock)
    judgement = judge(mine.view, lock, task_ids, outcomes)
    found, notices = lock_lines(judgement, "the cache")
    # --only plans some cells: the lock's tasks of the cells it left out are not "no longer planned".
    planned = {cell.cell for cell in mine.view.cells}
    left_out = {cell.name for cell in spec.cells} - planned
    found += [
        f"{task}: in {lock.path.name} but no longer planned"
        for task in judgement.stale
        if not set(lock.tasks[task]["cells"] or [None]) <= left_out
    ]
    return found, notices


def check_run(
    graph: Graph,
    spec: Spec,
    materials: Mapping[str, tuple[str, dict[str, Any]]],
    results: Mapping[str, ActionResult],
) -> tuple[list[str], list[str]]:
    """(differences, notices) between what a `run --locked` made and the lock it was checked
    against: each task's key, and each output's bytes."""
    lock = config_lock(spec.path)
    if lock is None:  # checked before the run; gone since
        return [f"{lock_path(spec.path)}: the lock disappeared during the run"], []
    return lock_lines(_judge_made(graph, spec, lock, materials, results), "this run")


def _judge_made(
    graph: Graph,
    spec: Spec,
    lock: Lock,
    materials: Mapping[str, tuple[str, dict[str, Any]]],
    results: Mapping[str, ActionResult],
) -> Judgement:
    """What a run made for `spec`'s config (by the plan graph's ids) against the config's lock."""
    mine = config_tasks(graph, spec.path)
    outcomes = outcomes_of(mine.rekey(materials), mine.rekey(results))
    return judge(mine.view, lock, list(mine.view.nodes), outcomes)


def outcomes_of(
    materials: Mapping[str, tuple[str, dict[str, Any]]], results: Mapping[str, ActionResult]
) -> dict[str, Outcome]:
    """What a run made, as outcomes: a task without material did not start."""
    return {task: Outcome(material, key, results.get(task)) for task, (key, material) in materials.items()}


def verify_artifacts(
    graph: Graph,
    spec: Spec,
    lock: Lock,
    materials: Mapping[str, tuple[str, dict[str, Any]]],
    results: Mapping[str, ActionResult],
) -> list[ArtifactVerdict]:
    """One verdict per output the lock records, after a rebuild (`materials`, `results`)."""
    judgement = _judge_made(graph, spec, lock, materials, results)
    verdicts = list(judgement.artifacts)
    for task in judgement.stale:
        verdicts += [
            ArtifactVerdict(task, name, digest["hash"], None, NOT_REBUILT, "no longer planned")
            for name, digest in sorted(lock.tasks[task]["outputs"].items())
        ]
    return verdicts
