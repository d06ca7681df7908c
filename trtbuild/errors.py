"""One exception class per condition the user can act on.

Every error carries what happened, where (file:line:col, field path or task id) and what to do
next. The CLI turns them into a message and an exit status; nothing here prints.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1  # a task or a validation gate failed
EXIT_USAGE = 2  # bad usage or bad config


# C0 controls but tab and newline, DEL, C1 controls (\x9b is a one-byte CSI on some terminals), and
# the bidirectional overrides and isolates that reorder what a terminal or an editor shows.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_AND_NEWLINES = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, newlines: bool = True) -> str:
    """`text` with every control character spelled as an escape (`\x1b`, `\u202e`), so that a
    config's keys, values and names echoed in a message cannot drive the terminal (clear it, move
    the cursor, recolour, hide text). The one escaping function: the CLI's output (cli/terminal.py)
    and its log handler pass everything they print through it. `newlines=False` escapes tab and
    newline too, for a name or value quoted inside a line."""
    pattern = _CONTROLS if newlines else _CONTROLS_AND_NEWLINES
    return pattern.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


@dataclass(frozen=True)
class Location:
    """A place in a config file, 1-based like editors and compilers print it."""

    file: Path
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, which field, what, and how to fix it."""

    message: str
    location: Location | None = None
    field_path: str = ""
    hint: str = ""

    def render(self) -> str:
        where = str(self.location) if self.location else ""
        # A field path is made of the config's keys: a key may hold a newline (`"a\nb": 1`).
        head = ": ".join(part for part in (where, printable(self.field_path, newlines=False)) if part)
        text = f"{head}: {self.message}" if head else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class TrtbuildError(Exception):
    """Base of every error trtbuild reports to the user instead of a traceback."""

    exit_status = EXIT_FAILED


class ConfigError(TrtbuildError):
    """A config (or the command line) is wrong; nothing was run. Exit status 2."""

    exit_status = EXIT_USAGE

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))


class UsageError(TrtbuildError):
    """The command line is wrong. Exit status 2."""

    exit_status = EXIT_USAGE


@dataclass
class TaskFailure:
    """Why one task failed, as recorded in events and reports."""

    task_id: str
    message: str
    details: list[str] = field(default_factory=list)


class TaskError(TrtbuildError):
    """Raised inside a task's run: a message for the user, no traceback. The run exits 1."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        self.details = details or []
        super().__init__(message)


class StoreError(TrtbuildError):
    """The cache is damaged or locked beyond the bounded wait."""


class ReadOnlyCache(TrtbuildError):
    """The cache cannot be written and lacks a task the run needs (exec/read_only.py)."""

    def __init__(self, message: str, *, exit_status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class LockMismatch(TrtbuildError):
    """`run --locked`: the plan's keys (or cached outputs) differ from the lock. Nothing was run.
    Exit status 1."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        listing = "\n".join(f"  {line}" for line in differences)
        super().__init__(
            f"the plan differs from the lock ({len(differences)} difference(s)); nothing ran:\n{listing}\n"
            "  hint: run without --locked to rebuild and update the lock, then commit it"
        )


class LockError(TrtbuildError):
    """A lock file that cannot be used as it is: unreadable (not JSON, git merge-conflict markers, not
    the lock's shape) or written by a newer trtbuild. Names the file, the line and what to do. Exit 2."""

    exit_status = EXIT_USAGE

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.render())


class UnreadableLock(LockError):
    """The lock is not a lock document; a plain `run` replaces it (and says so), nothing else may."""


class LockPathUnusable(LockError):
    """The lock's path cannot hold a lock file: a directory is there, or it cannot be written."""


class NewerLockFormat(LockError):
    """The lock's format is newer than this trtbuild reads: rewriting it would lose what it records."""


def raised_at(error: BaseException, outside: tuple[str, ...] = ()) -> list[str]:
    """Where `error` was raised, as one detail line: its innermost frame whose file is not under one
    of the `outside` folders (libraries, to point at the user's own line), else its innermost."""
    frames = list(traceback.extract_tb(error.__traceback__))
    chosen = [f for f in frames if not f.filename.startswith(outside)] or frames
    return [f"raised at {chosen[-1].filename}:{chosen[-1].lineno} in {chosen[-1].name}"] if chosen else []
