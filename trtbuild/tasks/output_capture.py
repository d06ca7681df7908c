"""Capturing what a library prints in one task's thread, leaving every other thread's output alone.

`contextlib.redirect_stdout` swaps the process-wide `sys.stdout`. Tasks run on the executor's
threads (`-j N`) while the main thread prints progress and the summary through rich, which looks up
`sys.stdout` / `sys.stderr` at each write: two overlapping redirects restore each other's streams in
the wrong order and leave a task's buffer installed for good, so the summary, warnings and verify's
table vanished. Here `sys.stdout` and `sys.stderr` are replaced once, while anyone needs it, by a
stream that sends a thread's writes to that thread's capture target (a `threading.local`), and every
other thread's to the real stream.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO, cast

_targets = threading.local()  # attribute "stdout" / "stderr": this thread's capture target
_lock = threading.Lock()
_users = 0


class ThreadRoutedStream:
    """Writes go to the calling thread's capture target if it set one, else to `real`. Everything
    else (encoding, isatty, fileno) is the target's, so a capturing thread sees a StringIO and the
    others see the terminal."""

    def __init__(self, real: TextIO, name: str) -> None:
        self.real = real
        self.name = name

    def target(self) -> TextIO:
        routed: TextIO | None = getattr(_targets, self.name, None)
        return self.real if routed is None else routed

    def write(self, text: str) -> int:
        return self.target().write(text)

    def writelines(self, lines: Any) -> None:
        self.target().writelines(lines)

    def flush(self) -> None:
        self.target().flush()

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.target(), attribute)


@contextlib.contextmanager
def thread_routed_streams() -> Iterator[None]:
    """Install the routing streams for the duration (the executor does, around a run); nested and
    concurrent users share one installation, removed when the last one leaves."""
    global _users
    with _lock:
        if _users == 0:
            sys.stdout = cast(TextIO, ThreadRoutedStream(sys.stdout, "stdout"))
            sys.stderr = cast(TextIO, ThreadRoutedStream(sys.stderr, "stderr"))
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                sys.stdout = _real(sys.stdout)
                sys.stderr = _real(sys.stderr)


def _real(stream: TextIO) -> TextIO:
    # Someone may have replaced our stream meanwhile (pytest's capture): leave theirs in place.
    return stream.real if isinstance(stream, ThreadRoutedStream) else stream


@contextlib.contextmanager
def captured_output(stdout: TextIO, stderr: TextIO | None = None) -> Iterator[None]:
    """Send this thread's `print`s (and, if `stderr` is given, its stderr writes) to the given
    streams; other threads keep printing where they did. Writes from C++ go to the file
    descriptors, past any Python stream, as before."""
    with thread_routed_streams():
        saved = getattr(_targets, "stdout", None), getattr(_targets, "stderr", None)
        _targets.stdout = stdout
        if stderr is not None:
            _targets.stderr = stderr
        try:
            yield
        finally:
            _targets.stdout, _targets.stderr = saved
