"""Terminal output: progress and messages on stderr, results on stdout (cli/terminal.py draws them)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TextIO

from trtbuild.cli.terminal import Terminal


def error_console() -> Terminal:
    return Terminal(sys.stderr)


def output_console() -> Terminal:
    # Paths stay whole on one line when the output is piped or captured: lines are never wrapped.
    return Terminal(sys.stdout)


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
