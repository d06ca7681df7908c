"""The local executor: runs out-of-date tasks in dependency order on a pool of worker threads.

After a failure it starts nothing new unless keep_going, and always skips the failed task's
dependents; whatever finished is in the cache and materialised, so nothing built is lost.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import StoreError, TaskError, raised_at
from trtbuild.exec.events import TaskEvent, TaskState
from trtbuild.plan.graph import Dep, Graph, TaskNode
from trtbuild.plan.status import node_key
from trtbuild.store import ActionResult, FileHasher, Store
from trtbuild.tasks.base import TaskContext
from trtbuild.tasks.output_capture import thread_routed_streams

log = logging.getLogger("trtbuild.exec")
Signature = tuple[int, int, int, int]  # inode, device, size, mtime: what an in-place write changes


@dataclass
class RunOptions:
    out_dir: Path
    jobs: int = 1
    keep_going: bool = False
    use_cache: bool = True


class LocalExecutor:
    def __init__(
        self,
        graph: Graph,
        store: Store,
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

    def run(self) -> list[TaskEvent]:
        self._clear_artifacts()
        remaining = list(self.graph.nodes.values())  # in topological order
        running: dict[Future[TaskEvent], TaskNode] = {}
        jobs = max(1, self.options.jobs)
        stopped = False
        # Installed once for the whole run: a task capturing a library's prints on its thread must
        # not swap the streams under the main thread's progress lines and summary.
        with thread_routed_streams(), ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="task") as pool:
            while remaining or running:
                progressed = False
                for node in [] if stopped else list(remaining):
                    if len(running) >= jobs:
                        break
                    blocker = self._blocker(node)
                    if blocker == "wait":
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
        for node in remaining:
            blocker = self._blocker(node)
            self._finish(self._event(node, "skipped", blocker if blocker and blocker != "wait" else stopped))

    def _finish(self, event: TaskEvent) -> None:
        self.events[event.id] = event
        if event.state in ("cached", "ran"):
            self._materialize(event.id)
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
            cached = self._planned_result(node.id, key) or self.store.get_action(key)
            if cached is not None:
                return self._done(node, "cached", "cached", key, cached, 0.0)
        with self.store.lock(key):
            # Another trtbuild process may have built it while we waited for the lock.
            cached = self.store.get_action(key) if self.options.use_cache else None
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
            return self._done(node, "ran", reason, key, result, time.perf_counter() - started)

    def _planned_result(self, node_id: str, key: str) -> ActionResult | None:
        planned_key, result = self.planned.get(node_id, ("", None))
        return result if planned_key == key else None

    def _done(
        self, node: TaskNode, state: TaskState, reason: str, key: str, result: ActionResult, seconds: float
    ) -> TaskEvent:
        self.results[node.id] = result
        meta = dict(result.meta)
        warnings = list(meta.pop("warnings", []))
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
                meta = kind.run(ctx)
            finally:
                self._check_inputs_unchanged(node, inputs, linked)
            seconds = time.perf_counter() - started
            missing = [name for name in kind.outputs if not (outdir / name).is_file()]
            if missing:
                raise TaskError(f"the task finished without writing {missing}")
            outputs = {name: self.store.put_file(outdir / name, move=True) for name in kind.outputs}
        result = ActionResult(
            outputs=outputs, meta={**meta, "seconds": round(seconds, 3), "warnings": ctx.warnings}
        )
        self.store.put_action(key, result)
        return result

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

    def _materialize(self, node_id: str) -> None:
        result = self.results.get(node_id)
        if result is None:
            return
        for cell in self.graph.cells:
            for artifact in cell.artifacts:
                if artifact.node_id == node_id:
                    destination = self.options.out_dir / cell.model / cell.cell / artifact.filename
                    self.store.materialize(result.outputs[artifact.output].hash, destination)
                    log.debug("materialised %s", os.fspath(destination))


def _signature(path: Path) -> Signature:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1, -1, -1)  # removed: compared as changed, and the blob is checked
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def unexpected_failure_details(error: BaseException) -> list[str]:
    """Where an exception no task turned into a TaskError came from, and what to do: the traceback
    itself goes to the debug log, not to the user's terminal."""
    return [
        *raised_at(error),
        "hint: trtbuild does not handle this failure yet: rerun with TRTBUILD_LOG=debug for the "
        "traceback, and report it",
    ]
