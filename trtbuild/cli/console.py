"""Terminal output: rich on stderr for progress and messages, stdout for results."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console


def _width(stream: TextIO) -> int | None:
    # Rich assumes 80 columns when the output is not a terminal (CI logs, pipes): tables of task ids
    # and reasons then wrap into unreadable cells. Logs have no width limit; give them room.
    return None if stream.isatty() else 150


def error_console() -> Console:
    return Console(stderr=True, soft_wrap=True, width=_width(sys.stderr))


def output_console() -> Console:
    # Paths must stay whole on one line when the output is piped or captured.
    return Console(soft_wrap=True, width=_width(sys.stdout))


@contextlib.contextmanager
def stdout_reserved_for_json() -> Iterator[TextIO]:
    """Send everything written to stdout — by us, torch or TensorRT's C++ loggers — to stderr, and
    yield a stream on the real stdout for the one JSON document."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    stream = os.fdopen(os.dup(saved), "w")
    try:
        yield stream
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        stream.flush()
        stream.close()
