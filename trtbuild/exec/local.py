"""The local executor: runs out-of-date tasks in dependency order, each in a worker process.

A thread per slot (slots.py) keys the task, looks it up, takes the store's lock, links its inputs,
hands `run` to the slot's worker process (worker.py, workers.py) and publishes what it wrote: only
`run` leaves this process, so everything that touches the cache happens here, as before, and a
worker that dies publishes nothing. A cached task starts no worker, so a fully cached run imports
no torch, onnx or TensorRT.

After a failure it starts nothing new unless keep_going, and always skips the failed task's
dependents; whatever finished is in the cache and materialised, so nothing built is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtbuild.errors import StoreError, TaskError
from trtbuild.exec.events import TaskEvent, TaskState
from trtbuild.exec.placement import this_machine, unplaceable
from trtbuild.exec.protocol import RunOptions
from trtbuild.exec.slots import Slots, available_memory, memory_note, plan_slots
from trtbuild.plan.graph import Dep, Graph, TaskNode
from trtbuild.plan.plan import raise_problems
from trtbuild.plan.status import node_key
from trtbuild.spec.model import Spec
from trtbuild.store import ActionResult, CacheStore, CorruptBlob, FileHasher
from trtbuild.store.scratch import remove_temp_files
from trtbuild.tasks.base import DamagedGate, TaskContext, TaskKind, gate_verdict
from trtbuild.tasks.output_capture import thread_routed_streams

if TYPE_CHECKING:  # the worker machinery (subprocess, multiprocessing) loads when a task runs
    from trtbuild.exec.worker import Done
    from trtbuild.exec.workers import WorkerPool

log = logging.getLogger("trtbuild.exec")
Signature = tuple[int, int, int, int]  # inode, device, size, mtime: what an in-place write changes


class LocalExecutor:
    def __init__(
        self,
        graph: Graph,
        store: CacheStore,
        hasher: FileHasher,
        options: RunOptions,
        on_event: Callable[[TaskEvent], None] | None = None,
        planned: Mapping[str, tuple[str, ActionResult]] | None = None,
    ) -> None:
        self.graph = graph
        # Node id -> (key, result) the plan found cached: read once, by the planner (a no-op run
        # read and touched every action entry twice).
        self.planned = dict(planned or {})
        self.store = store
        self.hasher = hasher
        self.options = options
        self.on_event = on_event or (lambda event: None)
        self.results: dict[str, ActionResult] = {}
        self.materials: dict[str, tuple[str, dict[str, Any]]] = {}  # node id -> (key, key material)
        self.events: dict[str, TaskEvent] = {}
        self.slots: Slots = plan_slots(max(1, options.jobs))
        self.notices: list[str] = list(self.slots.notes)  # what the run did other than asked
        self._workers: WorkerPool | None = None  # no process, nor its modules, until a task needs one
        self.peaks: dict[str, int] = {}  # node id -> its worker's peak resident set in bytes
        self.alone = False  # whether no other trtbuild process used the cache when the run started

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self.close(kill=kind is not None and issubclass(kind, KeyboardInterrupt))

    @property
    def workers(self) -> WorkerPool:
        if self._workers is None:
            from trtbuild.exec.workers import WorkerPool

            self._workers = WorkerPool(self.slots)
        return self._workers

    def close(self, *, kill: bool = False) -> None:
        """End the workers: `kill`ed at once (Ctrl-C), else each after its task (up to 10 s)."""
        if self._workers is not None:
            if kill:
                self._workers.kill()
            self._workers.close()

    def preflight(self, checks: list[tuple[TaskKind[Any], Spec, list[TaskNode]]]) -> None:
        """The kinds' preflights (plan.preflight_checks) in a worker, which keeps what they import
        (the model's factory, torch) for the first task, and whether this machine can take every
        task that must run (a GPU of a datacenter build's type); ConfigError as `plan.preflight`
        raises, all problems together."""
        to_run = [node for node_id, node in self.graph.nodes.items() if node_id not in self.planned]
        placement = (
            unplaceable(to_run, [this_machine()], where="this machine", memory=False) if to_run else []
        )
        if not checks:
            raise_problems(placement)
            return
        from trtbuild.exec.worker import Done, PreflightRequest
        from trtbuild.exec.workers import NotPortable

        try:
            if any(_in_main(kind) for kind, _, _ in checks):
                raise NotPortable("a kind is defined in __main__")
            done = self.workers.run(PreflightRequest(checks))
        except NotPortable:  # checked here, as before
            done = Done(
                {"problems": [p for kind, spec, nodes in checks for p in kind.preflight(spec, nodes)]}
            )
        if done.meta is None:
            raise TaskError(done.reason, done.details)
        raise_problems([*done.meta["problems"], *placement])

    def run(self) -> list[TaskEvent]:
        self._sweep()
        self._clear_artifacts()
        remaining = list(self.graph.nodes.values())  # in topological order
        if self.slots.count > 1:  # which of the ready tasks a free slot takes first
            remaining = longest_chain_first(remaining, cached=set(self.planned))
        running: dict[Future[TaskEvent], TaskNode] = {}
        jobs = self.slots.count
        stopped = False
        # Streams installed once for the whole run: a task run in this process (NotPortable),
        # capturing a library's prints on its thread, must not swap them under the main thread.
        with (
            thread_routed_streams(),
            contextlib.closing(self),
            ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="task") as pool,
            self._workers_killed_on_interrupt(),  # before the pool waits for its threads
        ):
            while remaining or running:
                progressed = False
                for node in list(remaining):
                    if stopped:  # nothing new starts, but what is cached is still this run's result
                        progressed = self._finish_if_cached(node, remaining) or progressed
                        continue
                    if len(running) >= jobs:
                        break
                    blocker = self._blocker(node)
                    if blocker == "wait" or (running and not self._memory_for(node)):
                        continue
                    remaining.remove(node)
                    progressed = True
                    if blocker is not None:
                        self._finish(self._event(node, "skipped", blocker))
                    else:
                        running[pool.submit(self._execute, node)] = node
                if not running:
                    if stopped or not progressed:
                        self._skip_unstarted(remaining)
                        break
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    event = future.result()
                    stopped = stopped or (event.state == "failed" and not self.options.keep_going)
                    self._finish(event)
        return [self.events[node_id] for node_id in self.graph.nodes if node_id in self.events]

    def _sweep(self) -> None:
        """What killed runs left in the cache's tmp/ (work dirs, temp files) goes before we add ours;
        when no other process uses the cache, so do the temp files of the cells' outputs."""
        swept = self.store.sweep_temp()
        self.alone = swept.alone
        removed = swept.removed
        for cell in self.graph.cells if swept.alone else ():
            folder = self.options.out_dir / cell.model / cell.cell
            removed += remove_temp_files(folder, [artifact.filename for artifact in cell.artifacts])
        if removed:
            log.debug("removed %d leftovers of dead trtbuild processes", removed)

    @contextlib.contextmanager
    def _workers_killed_on_interrupt(self) -> Iterator[None]:
        """Ctrl-C: end the workers at once, so the slots' threads (waiting for their answers) fail
        their tasks, publishing nothing, and the run exits 130 in milliseconds. Without this the
        pool waited for the running tasks to finish (1.5 s for a tiny model's build, minutes for
        a real one) when the signal reached trtbuild's process alone."""
        try:
            yield
        except KeyboardInterrupt:
            self.close(kill=True)
            raise

    def _finish_if_cached(self, node: TaskNode, remaining: list[TaskNode]) -> bool:
        """After a failure stopped the run, a task the plan found cached, with its upstreams done,
        still finishes as cached (it costs no work): its cells' outputs are materialised and
        reported as current. Skipping them emptied a cached cell's folder in a fresh `--out` (and,
        before, after any failure in another cell)."""
        if node.id not in self.planned or self._blocker(node) is not None:
            return False
        keyed = node_key(node, self.hasher, self.results)
        if keyed is None or not self.options.use_cache:
            return False
        # Checked and materialised as any hit is (a damaged one is dropped and stays unfinished).
        result = self._trusted(node, keyed[0], self._planned_result(node.id, keyed[0]))
        if result is None:
            return False
        self.materials[node.id] = keyed
        remaining.remove(node)
        self._finish(self._done(node, "cached", "cached", keyed[0], result, 0.0))
        return True

    def _memory_for(self, node: TaskNode) -> bool:
        """Whether the memory available covers the task's estimate (asked only while others run)."""
        available = available_memory()
        needed = node.task.memory
        if available is None or available >= needed:
            return True
        note = memory_note(self.options.jobs, needed, available)
        if note not in self.notices:
            self.notices.append(note)
        return False

    def _blocker(self, node: TaskNode) -> str | None:
        """ "wait" while an upstream is unfinished; a skip reason if one did not succeed; else None.
        A skipped upstream passes its own reason on, so every dependent names the failure itself."""
        for dep in node.deps.values():
            upstream = self.events.get(dep.node_id)
            if upstream is None:
                return "wait"
            if upstream.state == "failed":
                return f"{dep.node_id} failed"
            if upstream.state == "skipped":
                return upstream.reason
        return None

    def _skip_unstarted(self, remaining: list[TaskNode]) -> None:
        """Skip what was not started after a failure stopped the run (in graph order, so each
        node's upstreams have their events): a dependent of the failure says so, the rest say what
        stopped them."""
        failed = next((e.id for e in self.events.values() if e.state == "failed"), None)
        stopped = (
            f"not started after {failed} failed (--keep-going runs what does not depend on it)"
            if failed
            else "not started"
        )
        order = {node_id: index for index, node_id in enumerate(self.graph.nodes)}
        for node in sorted(remaining, key=lambda node: order[node.id]):
            blocker = self._blocker(node)
            self._finish(self._event(node, "skipped", blocker if blocker and blocker != "wait" else stopped))

    def _finish(self, event: TaskEvent) -> None:
        self.events[event.id] = event
        if event.state == "ran":  # a cached result's artifacts were linked when it was checked
            self._materialize(event.id, self.results[event.id])
        self.on_event(event)

    def _event(self, node: TaskNode, state: TaskState, reason: str, **fields: Any) -> TaskEvent:
        return TaskEvent(
            id=node.id,
            kind=node.kind,
            model=node.model,
            cells=list(node.cells),
            state=state,
            reason=reason,
            **fields,
        )

    def _execute(self, node: TaskNode) -> TaskEvent:
        keyed = node_key(node, self.hasher, self.results)
        assert keyed is not None, "dependencies finished before their dependents start"
        key, material = keyed
        self.materials[node.id] = (key, material)
        if self.options.use_cache:
            cached = self._trusted(node, key, self._planned_result(node.id, key) or self._lookup(node, key))
            if cached is not None:
                return self._done(node, "cached", "cached", key, cached, 0.0)
        return self._build(node, key)

    def _build(self, node: TaskNode, key: str) -> TaskEvent:
        """Run a task the cache does not have, under its key's lock, and publish what it made."""
        with self.store.lock(key):
            # Another trtbuild process may have built it while we waited for the lock.
            cached = self._trusted(node, key, self._lookup(node, key)) if self.options.use_cache else None
            if cached is not None:
                return self._done(node, "cached", "built by another process", key, cached, 0.0)
            started = time.perf_counter()
            try:
                result = self._run_task(node, key)
            except TaskError as error:
                return self._event(
                    node,
                    "failed",
                    str(error),
                    key=key,
                    details=error.details,
                    seconds=time.perf_counter() - started,
                )
            except Exception as error:  # a bug, or a library failure the task does not turn into a message
                from trtbuild.exec.worker import unexpected_failure_details

                log.debug("%s failed", node.id, exc_info=True)
                return self._event(
                    node,
                    "failed",
                    f"{type(error).__name__}: {error}",
                    key=key,
                    details=unexpected_failure_details(error),
                    seconds=time.perf_counter() - started,
                )
            reason = "not in cache" if self.options.use_cache else "--no-cache"
            event = self._done(node, "ran", reason, key, result, time.perf_counter() - started)
            event.peak_memory = self.peaks.get(node.id)
            return event

    def _lookup(self, node: TaskNode, key: str) -> ActionResult | None:
        return self.store.get_action(key, outputs=node.task.outputs, task=node.id)

    def _trusted(self, node: TaskNode, key: str, result: ActionResult | None) -> ActionResult | None:
        """A cached result whose gate document and artifacts check out, the artifacts linked into
        the output folder (re-hashed if they were not there already); else None, its entry dropped
        with a warning, and the task runs again."""
        if result is None:
            return None
        try:
            self._gate(node, result)
            self._materialize(node.id, result)
        except (CorruptBlob, DamagedGate) as damaged:
            self.store.drop_action(key, f"its {node.task.gate or 'output'} is damaged ({damaged})", node.id)
            return None
        return result

    def _gate(self, node: TaskNode, result: ActionResult) -> dict[str, Any]:
        """A gate's verdict and failures, from its hash-checked document (never the metadata)."""
        gate = node.task.gate
        if gate is None:
            return {}
        return gate_verdict(self.store.read_verified(result.outputs[gate].hash))

    def _planned_result(self, node_id: str, key: str) -> ActionResult | None:
        planned_key, result = self.planned.get(node_id, ("", None))
        return result if planned_key == key else None

    def _done(
        self, node: TaskNode, state: TaskState, reason: str, key: str, result: ActionResult, seconds: float
    ) -> TaskEvent:
        meta = dict(result.meta)
        warnings = list(meta.pop("warnings", []))
        try:
            meta.update(self._gate(node, result))
        except (StoreError, DamagedGate) as damaged:  # just written by the task: a bug, or the disk
            reason = f"its {node.task.gate} cannot be read back from the cache: {damaged}"
            return self._event(node, "failed", reason, key=key, seconds=seconds)
        self.results[node.id] = result
        return self._event(node, state, reason, key=key, seconds=seconds, warnings=warnings, meta=meta)

    def _run_task(self, node: TaskNode, key: str) -> ActionResult:
        kind = node.task
        with self.store.temp_dir(f"{node.kind}-") as workdir:
            inputs, linked = self._link_inputs(node, workdir / "inputs")
            outdir = workdir / "out"
            outdir.mkdir()
            ctx = TaskContext(
                task_id=node.id,
                params=node.params,
                inputs=inputs,
                outdir=outdir,
                context=node.context,
                toolchains=self.store.toolchains_dir,
            )
            started = time.perf_counter()
            try:
                meta = self._run_in_worker(ctx, kind)
            finally:
                self._check_inputs_unchanged(node, inputs, linked)
            seconds = time.perf_counter() - started
            missing = [name for name in kind.outputs if not (outdir / name).is_file()]
            if missing:
                raise TaskError(f"the task finished without writing {missing}")
            outputs = {name: self.store.put_file(outdir / name, move=True) for name in kind.outputs}
        self._recheck_inputs(node)
        result = ActionResult(
            outputs=outputs, meta={**meta, "seconds": round(seconds, 3), "warnings": ctx.warnings}
        )
        self.store.put_action(key, result)
        return result

    def _run_in_worker(self, ctx: TaskContext[Any], kind: Any) -> dict[str, Any]:
        """`kind.run(ctx)` in a worker process; here if the task cannot be sent to one (its kind is
        defined in the caller's __main__, or its params do not pickle), with a note saying so."""
        from trtbuild.exec.worker import TaskRequest
        from trtbuild.exec.workers import NotPortable

        request = TaskRequest(
            kind, ctx.task_id, ctx.params, dict(ctx.inputs), ctx.outdir, dict(ctx.context), ctx.toolchains
        )
        try:
            if _in_main(kind):
                raise NotPortable(f"its kind {type(kind).__name__} is defined in __main__")
            done = self.workers.run(request)
        except NotPortable as why:
            self.notices.append(f"{ctx.task_id} ran in trtbuild's own process, not a worker: {why}")
            result: dict[str, Any] = kind.run(ctx)
            return result
        if done.peak:
            self.peaks[ctx.task_id] = done.peak
        return _unpacked(done, ctx)

    def _link_inputs(self, node: TaskNode, input_dir: Path) -> tuple[dict[str, Path], dict[str, Signature]]:
        """The task's inputs: its files, and each upstream output linked from the cache under the
        input's own name (tools print it and sometimes care about it), with how it looked."""
        inputs: dict[str, Path] = dict(node.files)
        linked: dict[str, Signature] = {}
        input_dir.mkdir()
        for name, dep in node.deps.items():
            path = input_dir / name
            self.store.materialize(self._digest(dep), path)
            inputs[name] = path
            linked[name] = _signature(path)
        return inputs, linked

    def _check_inputs_unchanged(
        self, node: TaskNode, inputs: Mapping[str, Path], linked: Mapping[str, Signature]
    ) -> None:
        """Fail the task if it wrote to an input: a linked input is the cache's blob itself (read-only,
        which does not stop root), which is also the upstream's result and other cells' files under
        the output folder. Left alone, later tasks would read content their keys do not name, and
        the next lookup would find the blob damaged and drop it (a cache miss that a run reports
        as "not built yet"). A touched file whose bytes are the same is fine."""
        for name, before in linked.items():
            dep = node.deps[name]
            digest = self._digest(dep)
            if _signature(inputs[name]) == before or self.store.verify_blob(digest):
                continue
            # verify_blob has dropped the damaged blob; the files linked to it go too.
            self._unlink_artifacts(digest)
            raise TaskError(
                f"the task wrote to its input {name} ({dep.node_id}'s {dep.output}) in place, damaging "
                "the cached file: it has been dropped from the cache and the next run rebuilds it. "
                "A task must hand tools that rewrite their input a copy of it"
            )

    def _recheck_inputs(self, node: TaskNode) -> None:
        """Re-hash the task's input blobs once its work dir is gone (the cold path: a task takes
        seconds, 100 MB hash in 20 ms). Linking and unlinking them changed their ctime, so the stat
        cache would have the next no-op hash them instead; and a write that kept the size and mtime,
        which _check_inputs_unchanged cannot see, is caught here."""
        for name, dep in node.deps.items():
            digest = self._digest(dep)
            if not self.store.verify_blob(digest):
                self._unlink_artifacts(digest)
                raise TaskError(
                    f"its input {name} ({dep.node_id}'s {dep.output}) changed in the cache while the task "
                    "ran: it has been dropped from the cache and the next run rebuilds it"
                )

    def _digest(self, dep: Dep) -> str:
        return self.results[dep.node_id].outputs[dep.output].hash

    def _unlink_artifacts(self, digest: str) -> None:
        for cell in self.graph.cells:
            for artifact in cell.artifacts:
                result = self.results.get(artifact.node_id)
                if result is not None and result.outputs[artifact.output].hash == digest:
                    (self.options.out_dir / cell.model / cell.cell / artifact.filename).unlink(
                        missing_ok=True
                    )

    def _clear_artifacts(self) -> None:
        """Remove the planned cells' artifacts from the output folder before running: each comes back
        as its task finishes (from the cache if nothing changed), so a task that fails this time
        cannot leave last run's file looking current. The cache still holds every earlier result.
        A file that already is the blob of a result the plan found cached stays: it is current, and
        a no-op run rewrites nothing."""
        for cell in self.graph.cells:
            for artifact in cell.artifacts:
                path = self.options.out_dir / cell.model / cell.cell / artifact.filename
                if not self._is_planned_output(path, artifact.node_id, artifact.output):
                    path.unlink(missing_ok=True)

    def _is_planned_output(self, path: Path, node_id: str, output: str) -> bool:
        _, result = self.planned.get(node_id, ("", None))
        if result is None or output not in result.outputs:
            return False
        try:
            blob = self.store.local_path(result.outputs[output].hash)
            return os.path.samestat(os.stat(path, follow_symlinks=False), os.stat(blob))
        except (OSError, StoreError):
            return False

    def _materialize(self, node_id: str, result: ActionResult) -> None:
        for cell in self.graph.cells:
            for artifact in cell.artifacts:
                if artifact.node_id == node_id:
                    destination = self.options.out_dir / cell.model / cell.cell / artifact.filename
                    self.store.materialize(result.outputs[artifact.output].hash, destination)
                    log.debug("materialised %s", os.fspath(destination))


def longest_chain_first(nodes: list[TaskNode], cached: Collection[str] = ()) -> list[TaskNode]:
    """`nodes` (in graph order) ordered by the work on their longest chain of dependents, their own
    included (`TaskKind.cost`; a `cached` task's is none), graph order among equals: which of the
    ready tasks a free slot takes first. With two slots, graph order started the int8 calibration,
    the head of the longest chain, after the reference and the probe, and its validation then ran
    alone on one of the two CPUs at the end."""
    dependents: dict[str, list[str]] = {node.id: [] for node in nodes}
    for node in nodes:
        for dep in node.deps.values():
            dependents[dep.node_id].append(node.id)
    chain: dict[str, float] = {}
    for node in reversed(nodes):  # dependents first
        own = 0.0 if node.id in cached else node.task.cost(node.params)
        chain[node.id] = own + max((chain[d] for d in dependents[node.id]), default=0.0)
    return sorted(nodes, key=lambda node: -chain[node.id])


def _signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1, -1, -1)  # removed: compared as changed, and the blob is checked
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def _in_main(kind: TaskKind[Any]) -> bool:
    """A kind defined in the caller's `__main__` (a script, `python -c`): a worker, which does not
    run the caller's script, cannot load it."""
    return type(kind).__module__ == "__main__"


def _unpacked(done: Done, ctx: TaskContext[Any]) -> dict[str, Any]:
    """A worker's answer as the task's own `run` would have given it here: its metadata, or its
    failure raised (an unexpected one's traceback to the debug log, as `_execute` logs it)."""
    ctx.warnings.extend(done.warnings)
    if done.meta is not None:
        return done.meta
    if done.traceback:
        log.debug("%s failed in its worker process\n%s", ctx.task_id, done.traceback)
    raise TaskError(done.reason, done.details)
