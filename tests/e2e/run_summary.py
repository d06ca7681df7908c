"""Reading `trtbuild run`'s final summary (stdout) the way a user reads it."""

from __future__ import annotations


def summary_failure(stdout: str, task: str) -> list[str]:
    """The summary's note for `task`'s failure (from the task id on), then the lines listed under
    `<task> failed; with it:` (details, hint)."""
    lines = stdout.splitlines()
    note = next(line for line in lines if f"{task} failed: " in line)
    block = [note[note.index(f"{task} failed: ") :]]
    start = next((i for i, line in enumerate(lines) if line == f"{task} failed; with it:"), len(lines))
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return block
