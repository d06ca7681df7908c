"""What callers (the API) may ask of an executor, whichever runs the tasks: local worker processes
(exec/local.py, the default) or a Ray cluster's nodes (exec/ray/).

An executor is built over a planned graph, a store and the plan's cached results; `preflight`
raises ConfigError for what stops the run before anything runs (the kinds' checks, a task no
machine can take), `run` runs the graph and returns one event per task in graph order, with the
local executor's semantics: dependency order, keep-going, a failure's dependents skipped, events as
tasks finish. Afterwards `materials` and `results` hold each finished task's key, key material and
outputs (the lock is written from them) and `notices` what the run did other than asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from trtbuild.exec.events import TaskEvent
from trtbuild.store import ActionResult

if TYPE_CHECKING:
    from trtbuild.plan.graph import TaskNode
    from trtbuild.spec.model import Spec
    from trtbuild.tasks.base import TaskKind

EXECUTORS = ("local", "ray")


@dataclass
class RunOptions:
    out_dir: Path
    jobs: int = 1
    keep_going: bool = False
    use_cache: bool = True


class Executor(Protocol):
    @property
    def notices(self) -> list[str]: ...

    @property
    def materials(self) -> dict[str, tuple[str, dict[str, Any]]]: ...

    @property
    def results(self) -> dict[str, ActionResult]: ...

    @property
    def alone(self) -> bool:
        """Whether no other trtbuild process used the cache when the run started."""
        ...

    def preflight(self, checks: list[tuple[TaskKind[Any], Spec, list[TaskNode]]]) -> None: ...

    def run(self) -> list[TaskEvent]: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None: ...
