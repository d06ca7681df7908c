"""The worker process: runs one task's `run` at a time for the executor, in a process of its own.

Why processes: torch's export is not thread-safe, torch and ONNX Runtime each size a thread pool by
the CPUs they see (two tasks in one process on two CPUs ran four busy threads), and what a task
imports and allocates stays in the process it ran in. The executor keeps everything that touches
the cache (keys, the store's lock, linking inputs, publishing outputs, the action entry); a worker
gets the task's kind, params, input paths and an empty output folder, and answers with the
metadata and warnings `run` returned, or the failure as the executor would have written it.

Started as `python -c BOOTSTRAP FD` (never a fork of the executor, never a re-run of the caller's
`__main__`), with the executor's `sys.path` in TRTBUILD_WORKER_PATH so that a task kind defined in a
test or a user's module unpickles here. Messages on the connection, one pickle each:
- executor -> worker: a `Setup` first, then one `TaskRequest` per task (or a `PreflightRequest`, the
  checks before a run); closing it ends the worker.
- worker -> executor: `("log", LogRecord)` while the task runs (re-emitted by the executor through
  its own handlers and filters, as if the task had logged there), then `("done", Done)`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from trtbuild.errors import Problem, TaskError, raised_at
from trtbuild.spec.model import Spec
from trtbuild.tasks.base import TaskContext, TaskKind
from trtbuild.tasks.float_environment import THREADS_VARIABLE

PATH_VARIABLE = "TRTBUILD_WORKER_PATH"
PARENT_VARIABLE = "TRTBUILD_WORKER_PARENT"  # the executor's pid: the worker ends when it is gone
PARENT_POLL_S = 0.5
# Imports only what the worker needs before the first task: not the caller's __main__.
BOOTSTRAP = (
    "import json, os, sys; sys.path[:] = json.loads(os.environ.pop('TRTBUILD_WORKER_PATH')); "
    "from trtbuild.exec.worker import main; main(int(sys.argv[1]))"
)


@dataclass(frozen=True)
class Setup:
    levels: dict[str, int]  # logger name ("" = root) -> level, as the executor's process has them


@dataclass(frozen=True)
class TaskRequest:
    kind: TaskKind[Any]
    task_id: str
    params: Any
    inputs: dict[str, Path]
    outdir: Path
    context: dict[str, Any]
    toolchains: Path | None

    @property
    def label(self) -> str:
        return self.task_id

    def answer(self) -> Done:
        return run_request(self)


@dataclass(frozen=True)
class PreflightRequest:
    """Each kind's preflight (`TaskKind.preflight`) of the tasks that must run: it imports what the
    tasks will (the model's factory, torch), which is the worker's to hold, not the executor's."""

    checks: list[tuple[TaskKind[Any], Spec, list[Any]]]
    label: str = "the checks before running"

    def answer(self) -> Done:
        problems: list[Problem] = []
        try:
            for kind, spec, tasks in self.checks:
                problems += kind.preflight(spec, tasks)
        except Exception as error:  # a check's own bug: said as a task's would be
            return _unexpected(error, [])
        return Done({"problems": problems})


@dataclass
class Done:
    meta: dict[str, Any] | None  # None: the task failed
    warnings: list[str] = field(default_factory=list)
    reason: str = ""  # a failure's message, as the executor's event says it
    details: list[str] = field(default_factory=list)
    traceback: str = ""  # an unexpected failure's traceback, for the executor's debug log
    rss: int = 0  # the worker's resident memory after the task, once garbage was returned
    peak: int = 0  # the worker's peak resident memory while the task ran (0: unknown)


def main(fd: int) -> None:
    # Ctrl-C ends the worker at once, quietly; the executor fails its task and stops the run.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _end_with_parent(int(os.environ.pop(PARENT_VARIABLE, "0")))
    connection = Connection(fd)
    setup: Setup = connection.recv()
    _forward_logs(connection, setup.levels)
    while True:
        try:
            request: TaskRequest | PreflightRequest = connection.recv()
        except EOFError:
            return
        except Exception as error:  # the kind's module does not import here
            done = Done(None, reason=f"the task could not be loaded in a worker process: {error}")
        else:
            _reset_peak()
            done = request.answer()
            done.peak = _status_bytes("VmHWM")
        done.rss = _release_memory()
        _send(connection, ("done", done))


def _end_with_parent(parent: int) -> None:
    """End this worker, mid-task too, once the executor is gone. A SIGTERM or SIGKILL sent to
    trtbuild's pid alone (`kill PID`, a supervisor) ends that process at once: its pipe then closes, but a
    busy worker reads it only after the task, which went on for minutes, orphaned, with its CPUs and
    memory. A thread rather than PR_SET_PDEATHSIG, which fires when the executor's *thread* that
    started the worker ends (a slot's), not its process."""
    if parent <= 0 or os.getppid() != parent:
        return  # started through something else (a wrapper script): which process to watch is unclear

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(PARENT_POLL_S)
        os._exit(1)  # nobody reads the answer; the executor publishes nothing of a worker's

    threading.Thread(target=watch, name="trtbuild-parent-watch", daemon=True).start()


def run_request(request: TaskRequest) -> Done:
    ctx: TaskContext[Any] = TaskContext(
        task_id=request.task_id,
        params=request.params,
        inputs=request.inputs,
        outdir=request.outdir,
        context=request.context,
        toolchains=request.toolchains,
    )
    try:
        meta = request.kind.run(ctx)
    except TaskError as error:
        return Done(None, ctx.warnings, str(error), list(error.details))
    except Exception as error:  # a bug, or a library failure the task does not turn into a message
        return _unexpected(error, ctx.warnings)
    return Done(meta, ctx.warnings)


def _unexpected(error: Exception, warnings: list[str]) -> Done:
    reason = f"{type(error).__name__}: {error}"
    return Done(None, warnings, reason, unexpected_failure_details(error), traceback.format_exc())


def unexpected_failure_details(error: BaseException) -> list[str]:
    """Where an exception no task turned into a TaskError came from, and what to do: the traceback
    itself goes to the debug log, not to the user's terminal."""
    return [
        *raised_at(error),
        "hint: trtbuild does not handle this failure yet: rerun with TRTBUILD_LOG=debug for the "
        "traceback, and report it",
    ]


_send_lock = threading.Lock()  # libraries log from their own threads


def _send(connection: Connection, message: tuple[str, Any]) -> None:
    with _send_lock:
        connection.send(message)


class _ForwardToExecutor(logging.Handler):
    def __init__(self, connection: Connection) -> None:
        super().__init__(logging.NOTSET)
        self.connection = connection

    def emit(self, record: logging.LogRecord) -> None:
        # What QueueHandler does: the message formatted here, nothing unpicklable left in it.
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        with contextlib.suppress(OSError, ValueError):  # the executor is gone: nothing to log to
            _send(self.connection, ("log", record))


def _forward_logs(connection: Connection, levels: dict[str, int]) -> None:
    root = logging.getLogger()
    root.handlers[:] = [_ForwardToExecutor(connection)]
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)


def _release_memory() -> int:
    """Hand freed memory back to the system (glibc keeps freed heap pages for reuse) and say how
    much the process still holds, for the executor to decide whether to keep it."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return resident_bytes(os.getpid())


def _reset_peak() -> None:
    """Start the peak resident set (VmHWM) afresh, so it is this task's (Linux 4.0 and later)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _status_bytes(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def resident_bytes(pid: int) -> int:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def environment(threads: int) -> dict[str, str]:
    """The worker's environment: the executor's, its sys.path, and, when it has a share of the
    CPUs, that share as the thread count of every library that reads one (before importing them)."""
    env = dict(os.environ)
    env[PATH_VARIABLE] = json.dumps([entry or os.getcwd() for entry in sys.path])
    env[PARENT_VARIABLE] = str(os.getpid())
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", THREADS_VARIABLE):
            env[name] = str(threads)
    return env
