"""The executor's side of the worker processes (worker.py): one per slot, started when a slot's
first task needs it, kept for the next task while it holds little memory, and ended with the run.

A worker that holds more than `RECYCLE_ABOVE` after a task (and after handing its free heap back)
is ended and the slot's next task starts a fresh one: torch's import is paid again (about 2 s of
CPU), but memory a task leaves behind (a model, an ONNX Runtime arena) does not add up over the
run. A worker that dies mid-task (killed, out of memory) fails that task with a message naming the
signal; the executor publishes nothing for it, and the slot's next task starts a fresh worker.
"""

from __future__ import annotations

import logging
import pickle
import queue
import signal
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection

from trtbuild.errors import TaskError
from trtbuild.exec.slots import Slots
from trtbuild.exec.worker import BOOTSTRAP, Done, PreflightRequest, Setup, TaskRequest, environment

log = logging.getLogger("trtbuild.exec")
RECYCLE_ABOVE = 1 << 30  # bytes a worker may keep between tasks
STOP_SECONDS = 10


class NotPortable(Exception):
    """The task cannot be sent to a worker (its kind or params do not pickle): run it here."""


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    connection: Connection

    def stop(self) -> None:
        self.connection.close()  # the worker's recv ends: it returns
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WorkerPool:
    def __init__(self, slots: Slots, recycle_above: int = RECYCLE_ABOVE) -> None:
        self.slots = slots
        self.recycle_above = recycle_above
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(slots.count):
            self.free.put(slot)
        self.workers: dict[int, _Worker] = {}

    def run(self, request: TaskRequest | PreflightRequest) -> Done:
        """Run the request in a free slot's worker (the executor never has more tasks running than
        slots, so one is free)."""
        try:
            message = pickle.dumps(request)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            raise NotPortable(str(error)) from error
        slot = self.free.get()
        try:
            return self._run_in(slot, request.label, message)
        finally:
            self.free.put(slot)

    def _run_in(self, slot: int, task_id: str, message: bytes) -> Done:
        worker = self.workers.get(slot) or self._start(slot)
        self.workers[slot] = worker
        try:
            worker.connection.send_bytes(message)
            done = _answer(worker.connection)
        except (EOFError, OSError):
            del self.workers[slot]
            raise TaskError(_death(worker, task_id)) from None
        if done.rss > self.recycle_above:
            log.debug("worker %d holds %d bytes after %s: replaced", worker.process.pid, done.rss, task_id)
            del self.workers[slot]
            worker.stop()
        return done

    def _start(self, slot: int) -> _Worker:
        threads = self.slots.threads
        ours, theirs = Pipe()
        process = subprocess.Popen(
            [sys.executable, "-c", BOOTSTRAP, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env=environment(threads),
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        levels = {"": logging.getLogger().level, "trtbuild": logging.getLogger("trtbuild").level}
        ours.send(Setup(levels))
        log.debug("worker %d started for slot %d (threads: %s)", process.pid, slot, threads or "default")
        return _Worker(process, ours)

    def kill(self) -> None:
        """End every worker now, mid-task too (Ctrl-C): its task fails and publishes nothing, and
        a builder it started dies with it (backends/trt/recipe.py: dies_with_parent)."""
        workers = list(self.workers.values())
        for worker in workers:
            worker.process.kill()
        for worker in workers:
            worker.process.wait()

    def close(self) -> None:
        """End every worker (a later `run` starts fresh ones)."""
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()


def _answer(connection: Connection) -> Done:
    """The task's result; what it logged meanwhile goes through this process's handlers."""
    while True:
        tag, payload = connection.recv()
        if tag == "log":
            logging.getLogger(payload.name).handle(payload)
        else:
            assert tag == "done", tag
            done: Done = payload
            return done


def _death(worker: _Worker, task_id: str) -> str:
    status = worker.process.wait()
    worker.connection.close()
    pid = worker.process.pid
    if status < 0:
        name = signal.Signals(-status).name if -status in signal.valid_signals() else str(-status)
        why = f"was killed by {name}"
        if -status == signal.SIGKILL:
            why += " (the kernel's out-of-memory killer sends it: if memory was short, run with a lower -j)"
    else:
        why = f"exited with status {status}"
    return f"the worker process running {task_id} (pid {pid}) {why}; nothing of the task was kept: run again"
