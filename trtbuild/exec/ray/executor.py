"""The Ray executor: the local executor's schedule, with each task that must run sent to a node.

Everything the local executor decides stays here, on the driver, with the same code
(exec/local.py): dependency order, keys, cache hits, keep-going, skipped dependents, events, the
lock. What changes is where a task that is not cached runs: as a Ray task placed by its kind's
declared resources (a GPU of the target type for a datacenter build), which fetches its inputs from
the remote cache and publishes its outputs there (exec/ray/node.py). The driver downloads only what
the output folder and the run's verdict need: the cells' artifacts and the gate documents.

A node that dies mid-task: Ray runs the task again elsewhere (up to MAX_RETRIES times); the dead
node published nothing, since a result is published only once it is whole. A task that no live node
can take fails the run before anything starts (exec/placement.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtbuild.errors import Problem, TaskError, TrtbuildError
from trtbuild.exec.events import TaskEvent, TaskState
from trtbuild.exec.local import LocalExecutor
from trtbuild.exec.placement import Offer, unplaceable
from trtbuild.exec.protocol import RunOptions
from trtbuild.exec.ray.cluster import RayCluster, ray_options
from trtbuild.exec.ray.node import NodeDone, NodeRequest, Upstream, run_on_node
from trtbuild.exec.slots import Slots
from trtbuild.plan.graph import Graph, TaskNode
from trtbuild.plan.plan import raise_problems
from trtbuild.store import ActionResult, CacheStore, FileHasher
from trtbuild.store.remote.settings import RemoteSettings

if TYPE_CHECKING:
    from trtbuild.spec.model import Spec
    from trtbuild.tasks.base import TaskKind

log = logging.getLogger("trtbuild.exec")
MAX_RETRIES = 3  # runs of a task after its node (or worker process) died
# A task in flight is checked against the live nodes this often; it fails once none could take it
# for NODES_GONE_S (a node restarting, or joining late, is not a node gone).
PLACEMENT_CHECK_S = 5.0
NODES_GONE_S = 20.0
PREFLIGHT_NEEDS = {"CPU": 1.0}  # the kinds' checks, one Ray task (preflight)


class RayExecutor(LocalExecutor):
    def __init__(
        self,
        graph: Graph,
        store: CacheStore,
        hasher: FileHasher,
        options: RunOptions,
        on_event: Callable[[TaskEvent], None] | None = None,
        planned: Mapping[str, tuple[str, ActionResult]] | None = None,
        *,
        cluster: RayCluster,
        cache_dir: Path | None,
        remote: RemoteSettings | None,
    ) -> None:
        super().__init__(graph, store, hasher, options, on_event, planned)
        self.cluster = cluster
        # A local instance's nodes are this machine: they share its cache. A cluster's nodes each
        # use their own (TRTBUILD_CACHE_DIR there), over the remote cache that joins them.
        self.node_cache = cache_dir if cluster.settings.local else None
        self.remote = remote
        self.notices = []  # -j's clamp to this machine's CPUs does not apply
        self._in_flight: set[Any] = set()
        self._connecting = threading.Lock()
        self._offers_lock = threading.Lock()
        self._offers: tuple[float, list[Offer]] | None = None  # when asked, what the live nodes had

    def _connect(self) -> None:
        """Connect (start a local instance) when a task must run: a run that finds everything
        cached starts no Ray. Tasks in flight: every ready task, up to the cluster's CPUs (or -j,
        if more); Ray queues each until a node has its resources."""
        with self._connecting:
            if not self.cluster.connected:
                self.cluster.connect()
                self.slots = Slots(max(self.options.jobs, self.cluster.cpus(), 1), 0)

    def close(self, *, kill: bool = False) -> None:
        if kill and self.cluster.connected:
            import ray

            for ref in list(self._in_flight):
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
        self.cluster.disconnect()

    def preflight(self, checks: list[tuple[TaskKind[Any], Spec, list[TaskNode]]]) -> None:
        """The kinds' checks on a node (the nodes run the tasks, and need their libraries), and
        whether a live node can take each task that must run; all problems together."""
        to_run = [node for node_id, node in self.graph.nodes.items() if node_id not in self.planned]
        if not to_run:  # Ray's start-up costs seconds, such a run a fraction of one (bench/RESULTS.md §9)
            self.notices.append(f"every task was cached: {_not_started(self.cluster)}")
            return
        self._connect()
        offers = self.cluster.offers()
        placement = unplaceable(to_run, offers, where="the cluster")
        problems = []
        # The checks run as a Ray task of one CPU: with no live node that has one (a head-only
        # cluster, its workers not up yet), it would wait forever. The placement problems say why.
        if checks and not any(offer.takes(PREFLIGHT_NEEDS) for offer in offers):
            raise_problems(placement or [_no_preflight_node(offers)])
        if checks:
            import ray

            from trtbuild.exec.ray.node import preflight_on_node

            options = {"num_cpus": PREFLIGHT_NEEDS["CPU"], "memory": 0}
            done = ray.get(ray.remote(preflight_on_node).options(**options).remote(checks))
            if done.meta is None:
                raise TaskError(done.reason, done.details)
            problems = done.meta["problems"]
        raise_problems([*problems, *placement])

    def _memory_for(self, node: TaskNode) -> bool:
        return True  # Ray places each task on a node with the memory it declares

    def _build(self, node: TaskNode, key: str) -> TaskEvent:
        """The task on a node (the local executor's key, cache and events around it)."""
        if not self.cluster.connected:
            return self._without_cluster(node, key)
        material = self.materials[node.id][1]
        done = self._on_a_node(node, key, material)
        if done.missing_input is not None and self._publish_again(done.missing_input, node):
            done = self._on_a_node(node, key, material)  # once: the input is on the remote now
        return self._adopt(node, done)

    def _publish_again(self, task_id: str, node: TaskNode) -> bool:
        """Publish an upstream result this machine holds, checked, over its remote copy, which a
        node could not use (a damaged blob, an entry without its blobs): this machine found it
        cached locally, so no run would ever rebuild and republish it. False if this machine lacks
        a blob of it too (then the node's failure stands, and the next run rebuilds it)."""
        key, result = self.materials[task_id][0], self.results[task_id]
        blobs = [digest.hash for digest in result.outputs.values()]
        if not all(self.store.has_blob(blob) and self.store.verify_blob(blob) for blob in blobs):
            return False
        self.store.share(key, result, again=True)
        self.notices.append(
            f"{task_id}'s result was published again from this machine's cache: a node running {node.id} "
            "could not get it from the remote cache (missing or damaged there)"
        )
        return True

    def _without_cluster(self, node: TaskNode, key: str) -> TaskEvent:
        """A task that must run though the plan found every task cached, so nothing was connected:
        its cached result was found damaged since. A cluster is connected to now, from this thread;
        a local instance cannot be started off the main thread (Ray sets signal handlers there), so
        the task runs in a local worker process, on the machine that instance would have used, and
        the run says so."""
        if self.cluster.settings.local:
            self.notices.append(
                f"{node.id} ran in a local worker process: its cached result was found damaged after "
                f"planning, and since every task was cached then, {_not_started(self.cluster)}"
            )
            return super()._build(node, key)
        try:
            self._connect()
        except TrtbuildError as error:
            return self._event(node, "failed", str(error))
        return self._build(node, key)

    def _on_a_node(self, node: TaskNode, key: str, material: dict[str, Any]) -> NodeDone:
        import ray

        request = NodeRequest(
            kind=node.task,
            task_id=node.id,
            params=node.params,
            context=dict(node.context),
            key=key,
            material=material,
            upstreams={
                name: Upstream(dep.node_id, self.materials[dep.node_id][0], dep.output, self._digest_of(dep))
                for name, dep in node.deps.items()
            },
            files={name: (path, material["inputs"][name]) for name, path in node.files.items()},
            cache_dir=self.node_cache,
            remote=self.remote,
            use_cache=self.options.use_cache,
            threads=max(1, int(node.task.resources(node.params).cpus)),
        )
        options = ray_options(node.task.resources(node.params))
        remote = ray.remote(run_on_node).options(max_retries=MAX_RETRIES, retry_exceptions=False, **options)
        ref = remote.remote(request)
        self._in_flight.add(ref)
        try:
            gone = self._wait_placeable(ref, node)
            if gone is not None:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
                return NodeDone("failed", key, material, reason=gone)
            done: NodeDone = ray.get(ref)
        except ray.exceptions.RayError as error:  # retries exhausted, cancelled, not loadable there
            return NodeDone("failed", key, material, reason=_ray_failure(error))
        finally:
            self._in_flight.discard(ref)
        return done

    def _wait_placeable(self, ref: Any, node: TaskNode) -> str | None:
        """Wait for the task; None once it has finished, or why it never will: no live node can take
        it any more (the only node of its GPU type died), for NODES_GONE_S. Ray would keep it
        pending, and the run would wait forever."""
        import ray

        since: float | None = None
        while not ray.wait([ref], timeout=PLACEMENT_CHECK_S)[0]:
            problems = unplaceable([node], self._live_offers(), where="the cluster")
            if not problems:
                since = None
                continue
            since = since if since is not None else time.monotonic()
            if time.monotonic() - since >= NODES_GONE_S:
                return f"no live node can take it any more (a node left the cluster): {problems[0].message}"
        return None

    def _live_offers(self) -> list[Offer]:
        """The cluster's live nodes, asked at most once per PLACEMENT_CHECK_S for all tasks."""
        with self._offers_lock:
            now = time.monotonic()
            if self._offers is None or now - self._offers[0] >= PLACEMENT_CHECK_S:
                self._offers = (now, self.cluster.offers())
            return self._offers[1]

    def _digest_of(self, dep: Any) -> Any:
        return self.results[dep.node_id].outputs[dep.output]

    def _adopt(self, node: TaskNode, done: NodeDone) -> TaskEvent:
        """The node's answer as this run's: its logged warnings printed here, its key recorded,
        and the outputs this run shows (artifacts, gate documents) fetched and checked."""
        for record in done.records:
            logging.getLogger(record.name).handle(record)
        where = done.node or "a node"
        if done.differing_tools:
            self.notices.append(
                f"{node.id} ran on {where}, whose {', '.join(done.differing_tools)} differ(s) from this "
                "machine's: its key and the lock hold the node's"
            )
        if done.state == "failed" or done.result is None:
            reason = f"{done.reason} (on {where})"
            failed = self._event(
                node, "failed", reason, key=done.key, details=done.details, seconds=done.seconds
            )
            failed.node = done.node or None  # --json says where each task ran, a failed one too
            return failed
        self.materials[node.id] = (done.key, done.material)
        problem = self._fetched(node, done.key, done.result)
        if problem is not None:
            unfetched = self._event(
                node, "failed", f"{problem} (built on {where})", key=done.key, seconds=done.seconds
            )
            unfetched.node = done.node or None
            return unfetched
        state: TaskState = "ran" if done.state == "ran" else "cached"
        reason = (
            ("not in cache" if self.options.use_cache else "--no-cache")
            if state == "ran"
            else f"cached on {where}"
        )
        event = self._done(node, state, reason, done.key, done.result, done.seconds)
        event.node = where
        return event

    def _fetched(self, node: TaskNode, key: str, result: ActionResult) -> str | None:
        """Fetch a result this run must read or place (a cell's artifact, a gate document) into
        the local cache, checked; None, or why it cannot be had."""
        shown = node.task.gate is not None or any(
            artifact.node_id == node.id for cell in self.graph.cells for artifact in cell.artifacts
        )
        if not shown:
            return None
        local = self.store.get_action(key, outputs=node.task.outputs, task=node.id)
        if local is None or local.outputs != result.outputs:
            return (
                "its result is not in the remote cache: the node could not publish it (see the warnings "
                "above); run again"
            )
        if self._trusted(node, key, local) is None:
            return "its result is damaged in the remote cache (see the warning above); run again"
        return None


def _not_started(cluster: RayCluster) -> str:
    if cluster.settings.local:
        return "no Ray instance was started"
    return f"{cluster.settings.describe()} was not contacted"


def _no_preflight_node(offers: list[Offer]) -> Problem:
    machines = "; ".join(offer.describe() for offer in offers) or "no live node"
    return Problem(
        f"no live node of the cluster has a CPU to run the tasks' checks on; the cluster has: {machines}",
        hint="start the cluster's worker nodes (or wait until they have joined) and run again",
    )


def _ray_failure(error: Exception) -> str:
    import ray

    if isinstance(error, ray.exceptions.TaskCancelledError):
        return "cancelled"
    if isinstance(error, ray.exceptions.RayTaskError):  # the request did not load on the node
        return f"the task could not be loaded on a Ray node: {error.cause!r}"
    if isinstance(error, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        return f"its Ray worker or node died {MAX_RETRIES + 1} times running it: {error}"
    return f"Ray failed to run it: {type(error).__name__}: {error}"
