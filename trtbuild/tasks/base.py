"""What every task kind declares, and what its `run` receives.

A task kind is a small unit: declared outputs, an implementation version (bump it whenever the
output for the same params and inputs would change), the tool distributions whose versions enter
its key, and a `run` that reads only its inputs and writes only its outputs. Heavy libraries are
imported inside `run`, never at module import, so planning stays fast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JsonDict = dict[str, Any]


@dataclass
class TaskContext:
    """Everything a task's `run` may touch."""

    task_id: str
    params: Mapping[str, Any]  # canonical params: exactly what entered the key
    inputs: Mapping[str, Path]  # input name -> a read-only file
    outdir: Path  # write each declared output here, under its declared name
    # Facts that must not change the output and so stay out of the key (import search path).
    context: Mapping[str, Any] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("trtbuild.task"))
    warnings: list[str] = field(default_factory=list)

    def output(self, name: str) -> Path:
        return self.outdir / name

    def warn(self, message: str) -> None:
        """A condition the user must see (recorded in the task's result and printed)."""
        self.warnings.append(message)
        # Printed by the CLI from the task's event; logged at INFO so it is not shown twice.
        self.logger.info("%s: %s", self.task_id, message)


@dataclass(frozen=True)
class TaskKind:
    kind: str
    version: int
    outputs: tuple[str, ...]
    # Tool facts that enter the key, as a function of the params (the build task's depend on the
    # backend it uses). Returns a JSON-serialisable mapping.
    tools: Callable[[Mapping[str, Any]], JsonDict]
    run: Callable[[TaskContext], JsonDict]  # returns metadata stored beside the outputs
