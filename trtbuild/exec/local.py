"""The local executor: runs out-of-date tasks in dependency order on a pool of worker threads.

After a failure it starts nothing new unless keep_going, and always skips the failed task's
dependents; whatever finished is in the cache and materialised, so nothing built is lost.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError
from trtbuild.exec.events import TaskEvent, TaskState
from trtbuild.plan.graph import Graph, TaskNode
from trtbuild.plan.status import node_key
from trtbuild.store import ActionResult, FileHasher, Store
from trtbuild.tasks.base import TaskContext

log = logging.getLogger("trtbuild.exec")


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
    ) -> None:
        self.graph = graph
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
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="task") as pool:
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
                        for node in remaining:
                            self._finish(self._event(node, "skipped", "not started after a failure"))
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
        """ "wait" while an upstream is unfinished; a skip reason if one did not succeed; else None."""
        for dep in node.deps.values():
            upstream = self.events.get(dep.node_id)
            if upstream is None:
                return "wait"
            if upstream.state in ("failed", "skipped"):
                return f"{dep.node_id} {upstream.state}"
        return None

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
            cached = self.store.get_action(key)
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
            inputs = dict(node.files)
            input_dir = workdir / "inputs"
            input_dir.mkdir()
            for name, dep in node.deps.items():
                # Link the blob under the input's own name: tools print and sometimes care about it.
                path = input_dir / name
                self.store.materialize(self.results[dep.node_id].outputs[dep.output].hash, path)
                inputs[name] = path
            outdir = workdir / "out"
            outdir.mkdir()
            ctx = TaskContext(
                task_id=node.id, params=node.params, inputs=inputs, outdir=outdir, context=node.context
            )
            started = time.perf_counter()
            meta = kind.run(ctx)
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

    def _clear_artifacts(self) -> None:
        """Remove the planned cells' artifacts from the output folder before running: each comes back
        as its task finishes (from the cache if nothing changed), so a task that fails this time
        cannot leave last run's file looking current. The cache still holds every earlier result."""
        for cell in self.graph.cells:
            for artifact in cell.artifacts:
                (self.options.out_dir / cell.model / cell.cell / artifact.filename).unlink(missing_ok=True)

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


def unexpected_failure_details(error: BaseException) -> list[str]:
    """Where an exception no task turned into a TaskError came from, and what to do: the traceback
    itself goes to the debug log, not to the user's terminal."""
    frames = traceback.extract_tb(error.__traceback__)
    where = [f"raised at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}"] if frames else []
    return [
        *where,
        "hint: trtbuild does not handle this failure yet: rerun with TRTBUILD_LOG=debug for the "
        "traceback, and report it",
    ]
