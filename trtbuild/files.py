"""Writing a file so that a reader sees the old content or the new, never half of it.

The one helper behind the store's entries and GC roots, lock files, reports and config edits. A
temp file is written next to the target (or in a given directory on the same filesystem, such as
the store's tmp/, where gc sweeps what a crash leaves) and renamed onto it; rename is atomic within
a filesystem. Text is written as UTF-8.

Imports only the standard library: anything in trtbuild may use it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    temp_dir: Path | None = None,
    fsync: bool = True,
    mode: int = 0o666,
    keep_mode: bool = False,
) -> None:
    """Replace `path` with `data` atomically; the temp file is removed on any failure.

    `temp_dir` must be on `path`'s filesystem (default: `path`'s directory). `fsync` flushes the
    content to disk before the rename, so a crash cannot publish an empty or partial file.
    Permissions: `mode` less the umask, as `open()` gives a new file (mkstemp's 0600 would make a
    file meant to be shared private); with `keep_mode`, an existing `path`'s permission bits are kept
    exactly, as an editor saving a user's file does.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    kept = _permissions(path) if keep_mode else None
    temp = temp_path(Path(temp_dir) if temp_dir is not None else path.parent, path.name)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            if kept is not None:
                os.fchmod(fd, kept)
            _write_all(fd, payload)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write_if_changed(path: Path, text: str, *, fsync: bool = True, temp_dir: Path | None = None) -> bool:
    """`write_atomic` unless `path` already holds `text`; False when the file (and its mtime) was left
    alone. The comparison reads the file as text (universal newlines); an unreadable or undecodable
    file counts as different and is replaced."""
    path = Path(path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    write_atomic(path, text, temp_dir=temp_dir, fsync=fsync)
    return True


def temp_path(directory: Path, name: str) -> Path:
    """A fresh hidden name in `directory` (nothing is created). Unlikely to collide; writers open it
    with O_EXCL, so a collision is an error rather than a shared file. (os.urandom rather than the
    `secrets` module, whose import a no-op run would pay for.)"""
    return directory / f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"


def _permissions(path: Path) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    # os.write may write less than asked (signals, pipes, some filesystems): loop until done.
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
