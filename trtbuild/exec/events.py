"""Structured events: one per task, the record behind the progress display, --json and reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TaskState = Literal["cached", "ran", "failed", "skipped"]


@dataclass
class TaskEvent:
    id: str
    kind: str
    model: str
    cells: list[str]
    state: TaskState
    reason: str  # why it ran ("not in cache", "--no-cache") or why it failed or was skipped
    seconds: float = 0.0
    key: str | None = None
    warnings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # a failure's particulars (parser errors, ...)
    meta: dict[str, Any] = field(default_factory=dict)  # what the task recorded (gate results, sizes)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["cell"] = self.cells[0] if len(self.cells) == 1 else None
        record["seconds"] = round(self.seconds, 3)
        return record
