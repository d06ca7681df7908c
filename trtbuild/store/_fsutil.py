"""Small filesystem helpers shared by the store modules: temp names, tree removal.

Atomic file writes are :func:`trtbuild.files.write_atomic`."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

# Action entries and GC roots: the owner writes, everyone reads (less the umask). Blobs are 0o444.
FILE_MODE = 0o644


def open_regular(path: Path | str) -> int:
    """A read-only descriptor of ``path``, which must be a regular file. Opened without blocking: a
    FIFO planted where a cache file was (an action entry, a root, a blob, an output) would otherwise
    hang every run, plan, gc and fsck in open() until something wrote to it. OSError (EINVAL) for
    anything but a regular file; O_NONBLOCK changes nothing for a regular file's reads."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def read_regular(path: Path | str) -> tuple[bytes, os.stat_result]:
    """The content and stat of a regular file (see :func:`open_regular`)."""
    with open(open_regular(path), "rb") as stream:
        st = os.fstat(stream.fileno())
        return stream.read(), st


def unlink_quietly(path: Path) -> None:
    """Remove a file if it is there; never raises for a missing file."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def remove_any(path: Path) -> None:
    """Remove what is at `path`: a file, a symlink, a FIFO, or a directory planted where a file
    belongs (an action entry made a folder stayed, failing its task on every run)."""
    if os.path.isdir(path) and not os.path.islink(path):
        rmtree_force(path)
    else:
        unlink_quietly(path)


def rmtree_force(path: Path) -> None:
    """Remove a directory tree, even if a task left read-only directories or files in it."""
    import shutil  # a no-op removes nothing: its start-up skips shutil (and bz2, lzma)

    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path)
        return
    except OSError:
        pass
    # Make every directory writable and searchable, then try again.
    for dirpath, dirnames, _ in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, d) for d in dirnames)]:
            try:
                if not os.path.islink(name):
                    mode = os.stat(name).st_mode
                    os.chmod(name, stat.S_IMODE(mode) | stat.S_IRWXU)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)
