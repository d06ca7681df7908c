"""Task kinds, by name. Importing this is cheap: every heavy import happens inside a `run`."""

from __future__ import annotations

from trtbuild.tasks import build, export, precision, simplify, validate
from trtbuild.tasks.base import TaskContext, TaskKind

KINDS: dict[str, TaskKind] = {
    task.kind: task for task in (export.TASK, simplify.TASK, precision.TASK, build.TASK, validate.TASK)
}

__all__ = ["KINDS", "TaskContext", "TaskKind"]
