"""Structured events: one per task, the record behind the progress display, --json and reports."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TaskState = Literal["cached", "ran", "failed", "skipped"]

# Terminal control sequences (CSI colours, OSC links, two-byte escapes). Libraries colour their
# messages for a terminal (torch.onnx's "\x1b[96mThis is step 1/3\x1b[0m"); in a piped log, --json
# or report.md they are noise, and a rich console would print them raw.
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def plain_text(text: str) -> str:
    """`text` without terminal control sequences."""
    return ANSI_ESCAPE.sub("", text)


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
    peak_memory: int | None = None  # bytes: the worker's peak resident set while the task ran
    node: str | None = None  # the Ray node that ran it (host and node id); None: this machine

    def __post_init__(self) -> None:
        # Every consumer (progress, --json, reports) reads these: clean them once, here.
        self.reason = plain_text(self.reason)
        self.details = [plain_text(line) for line in self.details]
        self.warnings = [plain_text(line) for line in self.warnings]

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["cell"] = self.cells[0] if len(self.cells) == 1 else None
        record["seconds"] = round(self.seconds, 3)
        return record
