"""Content hashing and the stat cache that lets unchanged files skip re-hashing.

The stat cache maps ``(absolute path, size, mtime_ns, inode, device)`` to the file's sha256. It lives in a
sqlite database (WAL mode, busy timeout) so several trtbuild processes can share it. It is only an
optimisation: if the database is unusable, files are hashed directly and a warning is logged once.

A file modified within ``RACY_WINDOW_NS`` of the moment it is hashed could be modified again within the same
mtime tick without changing size or mtime ("racy git"). Such a file's hash is returned but not cached, so
the next lookup hashes it again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

from trtbuild.errors import StoreError

CHUNK_SIZE = 1 << 20
RACY_WINDOW_NS = 2_000_000_000
BUSY_TIMEOUT_S = 30.0

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    dev INTEGER NOT NULL,
    sha256 TEXT NOT NULL
)
"""


def sha256_file(path: Path | str) -> str:
    """The hex sha256 of a file's content, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _i64(value: int) -> int:
    """Fold an unsigned 64-bit number (inode, device) into sqlite's signed INTEGER range."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= (1 << 63) else value


def _signature(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, _i64(st.st_ino), _i64(st.st_dev))


STAT_CACHE_NAME = "stat-cache.sqlite"  # under the cache root, beside cas/ and ac/


class StatCache:
    """``(abs path, size, mtime_ns, inode, dev) -> sha256``, shared by processes through sqlite."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._local = threading.local()
        self._disabled = False

    # -- connection handling -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection | None:
        """A connection for this process and thread (sqlite connections must not cross a fork)."""
        if self._disabled:
            return None
        cached: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if cached is not None and cached[0] == os.getpid():
            return cached[1]
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            self._disable(exc)
            return None
        # A connection inherited across fork is deliberately left unclosed: closing it in the child
        # could disturb the parent's sqlite state. It is just dropped.
        self._local.conn = (os.getpid(), conn)
        return conn

    def _disable(self, exc: BaseException) -> None:
        if not self._disabled:
            _log.warning("stat cache %s unusable (%s); hashing files without it", self.db_path, exc)
        self._disabled = True

    # -- queries ------------------------------------------------------------------------------------
    def lookup(self, path: Path | str, st: os.stat_result) -> str | None:
        """The cached hash if the file's size, mtime, inode and device are unchanged, else None."""
        conn = self._connect()
        if conn is None:
            return None
        try:
            row = conn.execute(
                "SELECT size, mtime_ns, ino, dev, sha256 FROM files WHERE path = ?",
                (os.path.abspath(path),),
            ).fetchone()
        except sqlite3.Error as exc:
            _log.debug("stat cache lookup failed: %s", exc)
            return None
        if row is None or tuple(row[:4]) != _signature(st):
            return None
        return str(row[4])

    def record(self, path: Path | str, st: os.stat_result, sha256: str) -> None:
        """Remember ``sha256`` for the file as ``st`` describes it, unless its mtime is too recent."""
        if time.time_ns() - st.st_mtime_ns < RACY_WINDOW_NS:
            return
        conn = self._connect()
        if conn is None:
            return
        try:
            conn.execute(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, ino, dev, sha256)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (os.path.abspath(path), *_signature(st), sha256),
            )
        except sqlite3.Error as exc:
            _log.debug("stat cache write failed: %s", exc)

    def forget(self, path: Path | str) -> None:
        """Drop the entry for a path (e.g. a blob that was found corrupt and deleted)."""
        conn = self._connect()
        if conn is None:
            return
        try:
            conn.execute("DELETE FROM files WHERE path = ?", (os.path.abspath(path),))
        except sqlite3.Error as exc:
            _log.debug("stat cache delete failed: %s", exc)

    def hash_file(self, path: Path | str) -> str:
        """The file's sha256, from the cache when the file is unchanged, else hashed and cached."""
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"not a regular file: {path}")
        cached = self.lookup(path, st)
        if cached is not None:
            return cached
        sha = sha256_file(path)
        # Only trust the hash if the file did not change while we read it.
        after = os.stat(path)
        if _signature(after) == _signature(st):
            self.record(path, st, sha)
        return sha

    def close(self) -> None:
        """Close this thread's connection (if it belongs to this process)."""
        cached: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if cached is not None:
            if cached[0] == os.getpid():
                cached[1].close()
            self._local.conn = None


class FileHasher:
    """sha256 of the user's files that tasks read (model code, checkpoints, calibration data), with
    the cache's stat cache: a file whose size, mtime, inode and device are unchanged is not read.

    Kept apart from the store on purpose: the store holds blobs and action results (and may be
    remote); hashing the files of this checkout is a local matter whatever store is used."""

    def __init__(self, cache_root: Path) -> None:
        self._stat_cache = StatCache(Path(cache_root).expanduser().absolute() / STAT_CACHE_NAME)

    def hash_file(self, path: Path) -> str:
        try:
            return self._stat_cache.hash_file(path)
        except OSError as exc:
            raise StoreError(f"cannot hash {path}: {exc.strerror or exc}") from exc
