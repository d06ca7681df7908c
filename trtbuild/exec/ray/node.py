"""One task on a Ray node: what the Ray executor sends there, and what the node does with it.

The driver (exec/ray/executor.py) keeps the schedule; a node does what the local executor's slot
does for a task that is not cached, against the node's own store: its local cache (the driver's,
when Ray runs on this machine) over the shared remote cache. It fetches the task's upstream results
from the remote cache (hash-checked, as any download), runs `kind.run` in this Ray worker process,
and publishes the outputs as the local executor does: blobs first, the remote entry next, the local
entry last, so a node that dies mid-task publishes nothing, and Ray's retry on another node starts
from what is in the caches. Only small records travel through Ray: the request (params, keys,
digests) and the answer (the result's digests and metadata), never a file.

The key: the driver computes it from its own tool facts. A node whose facts differ (a GPU, a
library version) keys the task with its own, so that the cache entry and the lock say what made
the output; the answer says which facts differed, and the driver says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trtbuild.errors import TaskError
from trtbuild.exec.worker import Done, PreflightRequest, TaskRequest, run_request, unexpected_failure_details
from trtbuild.plan.graph import canonical_json
from trtbuild.plan.keys import task_key
from trtbuild.store import ActionResult, CacheStore, FileDigest, open_store
from trtbuild.store.remote.settings import RemoteSettings
from trtbuild.tasks.base import TaskKind, gate_verdict
from trtbuild.tasks.float_environment import THREADS_VARIABLE

log = logging.getLogger("trtbuild.exec")
NodeState = Literal["ran", "cached", "failed"]


@dataclass(frozen=True)
class Upstream:
    """An input made by another task: its key (to fetch its entry) and the output's digest."""

    task_id: str
    key: str
    output: str
    digest: FileDigest


@dataclass(frozen=True)
class NodeRequest:
    kind: TaskKind[Any]
    task_id: str
    params: Any
    context: dict[str, Any]
    key: str  # as the driver computed it
    material: dict[str, Any]
    upstreams: dict[str, Upstream]  # input name -> the upstream output it is
    files: dict[str, tuple[Path, str]]  # input name -> (path, the content hash the key names)
    cache_dir: Path | None  # None: the node's own (TRTBUILD_CACHE_DIR there, or its default)
    remote: RemoteSettings | None
    use_cache: bool = True
    threads: int = 1  # the task's CPUs: its libraries' intra-op threads


class MissingInput(TaskError):
    """An upstream output this node could get from no cache: the driver may publish it again."""

    def __init__(self, message: str, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id


@dataclass
class NodeDone:
    state: NodeState
    key: str
    material: dict[str, Any]
    result: ActionResult | None = None
    reason: str = ""
    details: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    node: str = ""  # where it ran: host name and Ray node id
    seconds: float = 0.0
    differing_tools: list[str] = field(default_factory=list)  # facts keyed as the node has them
    records: list[logging.LogRecord] = field(default_factory=list)  # what the node logged (warnings)
    missing_input: str | None = None  # the upstream task whose output no cache had (MissingInput)


def run_on_node(request: NodeRequest) -> NodeDone:
    """The Ray task's body (exec/ray/executor.py wraps it with `ray.remote`)."""
    with _captured_logs() as records:
        started = time.perf_counter()
        try:
            done = _run(request)
        except TaskError as error:
            done = NodeDone("failed", request.key, request.material, reason=str(error), details=error.details)
            done.missing_input = error.task_id if isinstance(error, MissingInput) else None
        except Exception as error:  # a bug, or a library failure no task turned into a message
            log.debug("%s failed on its node", request.task_id, exc_info=True)
            reason = f"{type(error).__name__}: {error}"
            done = NodeDone(
                "failed",
                request.key,
                request.material,
                reason=reason,
                details=unexpected_failure_details(error),
            )
        done.seconds = time.perf_counter() - started
    done.records = records
    done.node = node_name()
    return done


def preflight_on_node(checks: list[tuple[TaskKind[Any], Any, list[Any]]]) -> Done:
    """The kinds' checks before a run, on a node: the nodes run the tasks, with their libraries."""
    return PreflightRequest(checks).answer()


def _run(request: NodeRequest) -> NodeDone:
    store = open_store(request.cache_dir, request.remote)
    key, material, differing = _node_key(request)
    outputs = request.kind.outputs
    if request.use_cache:
        cached = store.get_action(key, outputs=outputs, task=request.task_id)
        if cached is not None:
            store.share(key, cached)  # the driver fetches it from the remote cache
            return NodeDone("cached", key, material, cached, differing_tools=differing)
    with store.lock(key):
        # Another process on this node (or another node, through the remote) may have built it.
        cached = store.get_action(key, outputs=outputs, task=request.task_id) if request.use_cache else None
        if cached is not None:
            store.share(key, cached)
            return NodeDone("cached", key, material, cached, differing_tools=differing)
        result, warnings = _build(store, request)
        store.put_action(key, result)
    return NodeDone("ran", key, material, result, warnings=warnings, differing_tools=differing)


def _node_key(request: NodeRequest) -> tuple[str, dict[str, Any], list[str]]:
    """The driver's key, or this node's when its tool facts differ (module doc); and which differ.
    A node whose trtbuild has another version of the kind refuses: its output would not be the
    driver's kind's."""
    kind, material = request.kind, request.material
    if kind.version != material["version"]:
        raise TaskError(
            f"this node's trtbuild has {kind.name} v{kind.version}, the driver's v{material['version']}: "
            "install the same trtbuild on every node"
        )
    tools = _json_normalized(kind.tools(request.params))
    if tools == material["tools"]:
        return request.key, material, []
    differing = sorted(k for k in {*tools, *material["tools"]} if tools.get(k) != material["tools"].get(k))
    mine = {**material, "tools": tools}
    return task_key(mine), mine, differing


def _build(store: CacheStore, request: NodeRequest) -> tuple[ActionResult, list[str]]:
    kind = request.kind
    with store.temp_dir(f"{kind.name}-") as workdir:
        inputs = _inputs(store, request, workdir / "inputs")
        outdir = workdir / "out"
        outdir.mkdir()
        os.environ[THREADS_VARIABLE] = str(
            request.threads
        )  # read when a session is made (float_environment.py)
        started = time.perf_counter()
        task = TaskRequest(
            kind, request.task_id, request.params, inputs, outdir, request.context, store.toolchains_dir
        )
        done = run_request(task)
        seconds = time.perf_counter() - started
        if done.meta is None:
            raise TaskError(done.reason, done.details)
        missing = [name for name in kind.outputs if not (outdir / name).is_file()]
        if missing:
            raise TaskError(f"the task finished without writing {missing}")
        outputs = {name: store.put_file(outdir / name, move=True) for name in kind.outputs}
    for name, upstream in request.upstreams.items():  # see exec/local.py: _recheck_inputs
        if not store.verify_blob(upstream.digest.hash):
            raise TaskError(f"its input {name} changed in this node's cache while the task ran: run again")
    if kind.gate is not None:  # a gate document that would be dropped as damaged is a failure here
        gate_verdict(store.read_verified(outputs[kind.gate].hash))
    meta = {**done.meta, "seconds": round(seconds, 3), "warnings": done.warnings}
    return ActionResult(outputs=outputs, meta=meta), done.warnings


def _inputs(store: CacheStore, request: NodeRequest, input_dir: Path) -> dict[str, Path]:
    """The upstream outputs, fetched from the remote cache unless this node has them, linked under
    their input names; and the user's files, which must be here as the driver hashed them."""
    input_dir.mkdir()
    inputs: dict[str, Path] = {}
    hasher = store.file_hasher()
    for name, (path, digest) in request.files.items():
        if not path.is_file() or hasher.hash_file(path) != digest:
            state = "is missing" if not path.is_file() else "differs from the driver's"
            raise TaskError(
                f"its input {name}, {path}, {state} on this node: the nodes need the project's files "
                "at the same path as the machine that runs trtbuild (a shared file system, or an image "
                "of this checkout; docs/scale.md)"
            )
        inputs[name] = path
    for name, upstream in request.upstreams.items():
        digest = upstream.digest.hash
        if not (store.has_blob(digest) and store.verify_blob(digest)):
            store.get_action(upstream.key, task=upstream.task_id)  # downloads its outputs, checked
        if not store.has_blob(digest):
            raise MissingInput(
                f"its input {name} ({upstream.task_id}'s {upstream.output}) is in neither this node's "
                "cache nor the remote cache (missing or damaged there, see the warnings)",
                upstream.task_id,
            )
        store.materialize(digest, input_dir / name)
        inputs[name] = input_dir / name
    return inputs


def _json_normalized(value: Mapping[str, Any]) -> dict[str, Any]:
    """Tool facts as the key material holds them (tuples as lists): compared with the driver's."""
    import json

    normalized: dict[str, Any] = json.loads(canonical_json(value))
    return normalized


def node_name() -> str:
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()[:8]
    except Exception:  # outside a Ray worker (a test calling run_on_node directly)
        node_id = "-"
    return f"{socket.gethostname()} (node {node_id})"


@contextlib.contextmanager
def _captured_logs() -> Iterator[list[logging.LogRecord]]:
    """trtbuild's warnings while the task runs (a remote cache's faults), for the driver to print:
    Ray keeps a worker's own log to the node's files."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            record.msg, record.args = record.getMessage(), None  # nothing unpicklable left
            record.exc_info = None
            records.append(record)

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("trtbuild")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
