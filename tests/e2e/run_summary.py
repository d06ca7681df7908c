"""Reading `trtbuild run`'s final summary (stdout) the way a user reads it."""

from __future__ import annotations


def summary_failure(stdout: str, task: str) -> list[str]:
    """The summary's `failed:` line for `task`, then the indented lines under it (details, hint)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"failed: {task}: "))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return block
