"""Inter-process exclusive locks: ``fcntl.flock`` on ``locks/<name>.lock`` with a bounded, polling wait.

flock locks belong to the open file, so they also exclude other threads of the same process that take
the same lock, and the kernel releases them when the holder dies; a lock file left behind by a killed
process does not block anyone. Locks are not re-entrant: taking a lock you already hold waits until the
timeout.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from trtbuild.errors import StoreError

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_POLL_MIN_S = 0.01
_POLL_MAX_S = 0.25


def check_lock_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise StoreError(f"invalid lock name {name!r}: use letters, digits, '_', '-' or '.'")
    return name


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return f" (held by {text})" if text else ""


@contextmanager
def file_lock(locks_dir: Path, name: str, timeout: float = 600.0) -> Iterator[None]:
    check_lock_name(name)
    path = locks_dir / f"{name}.lock"
    try:
        locks_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:  # a read-only cache, a lock file made unreadable: said, not a crash
        raise StoreError(f"cannot take the lock '{name}' ({path}): {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = _POLL_MIN_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreError(
                        f"timed out after {timeout:g}s waiting for lock '{name}' ({path}){_holder(fd)}: "
                        "another trtbuild process is building it. Wait for that process to finish and "
                        f"run again; if no trtbuild process is running, remove {path}."
                    ) from None
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, _POLL_MAX_S)
        try:
            # Note who holds the lock, for the timeout message of whoever waits next.
            # os.uname() is gethostname(2) too, without importing socket (a no-op run's start-up).
            info = f"pid {os.getpid()} on {os.uname().nodename}\n".encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, info, 0)
        except OSError:
            pass
        try:
            yield
        finally:
            with suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
