"""Content hashing and the stat cache that lets unchanged files skip re-hashing.

Content digests are BLAKE3 and say so: ``blake3:<64 hex>``. Every digest the cache, the lock and the
reports store carries its algorithm, so digests of another algorithm (an older cache's bare sha256
hex) can never be taken for one of these: they fail to parse, and count as absent.

The stat cache maps ``(absolute path, size, mtime_ns, ctime_ns, inode, device)`` to the file's digest. It
lives in a sqlite database (WAL mode, busy timeout) so several trtbuild processes can share it. It is
only an optimisation: if the database is unusable, files are hashed directly and a warning is logged
once. ctime is in the signature because `utime` can restore a file's mtime after an edit but not its
ctime: a byte flipped in a blob with its mtime put back is re-hashed, and caught, on the next read.
Linking a file (a blob into build/) changes its ctime too, so whoever links re-records it
(cas.py). Each row carries a checksum of its own fields: a damaged row is a miss (the file is
hashed again), never a wrong digest.

A file modified within ``RACY_WINDOW_NS`` of the moment it is hashed could be modified again within the same
mtime tick without changing size or mtime ("racy git"). Such a file's hash is returned but not cached, so
the next lookup hashes it again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from trtbuild.errors import StoreError
from trtbuild.store._fsutil import open_regular

if TYPE_CHECKING:
    import blake3

RACY_WINDOW_NS = 2_000_000_000
BUSY_TIMEOUT_S = 30.0

# Reads go through one buffer this large, in turn with the hashing: it stays in the core's cache
# between the copy from the page cache and the hashing. 1 GiB cost 0.31 CPU s so, against 0.41 s
# with a 16 MiB buffer and 0.36 s through mmap (its page faults); a second thread reading ahead into
# rotating buffers cost 1.10-1.19x the CPU seconds and 1.13-1.22x the wall of reading in turn
# (paired runs, 2 cores under load; likely as its copies land in the other core's cache).
CHUNK_SIZE = 1 << 20

ALGORITHM = "blake3"
DIGEST_PREFIX = f"{ALGORITHM}:"
DIGEST_PATTERN = re.compile(r"blake3:[0-9a-f]{64}")

_log = logging.getLogger(__name__)

# The table is named after the algorithm: a database an older trtbuild filled (table ``files``,
# sha256 hex) is never read for BLAKE3 digests.
# A new table for the rows with ctime and a checksum: rows without them are never read.
_TABLE = "files_blake3_ctime"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    dev INTEGER NOT NULL,
    digest TEXT NOT NULL,
    checksum TEXT NOT NULL
)
"""


def is_digest(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a content digest of this trtbuild's algorithm (``blake3:<64 hex>``)."""
    return isinstance(value, str) and DIGEST_PATTERN.fullmatch(value) is not None


def digest_hex(digest: str) -> str:
    """The hex part of a digest (blob file names, short forms in messages)."""
    return digest.removeprefix(DIGEST_PREFIX)


def new_hasher() -> blake3.blake3:
    """An incremental BLAKE3 hasher, on one thread. blake3's own threads (`max_threads`) never paid on
    this project's 2-core machines: 0.3-1.0x of one thread from 1 to 512 MiB (bench/hashing.py
    --sweep): past the CPU caches, memory bandwidth is the limit."""
    try:
        import blake3  # ~4 ms: a cached run that finds every file in the stat cache never needs it
    except ImportError as error:  # a dependency of trtbuild's: a broken install, said as such
        raise StoreError(
            f"cannot hash files: the blake3 package does not import ({error}); "
            "install it with `pip install blake3` (trtbuild depends on it)"
        ) from error
    return blake3.blake3()


def finish(hasher: blake3.blake3) -> str:
    return DIGEST_PREFIX + hasher.hexdigest()


def digest_bytes(data: bytes) -> str:
    """The digest of bytes in memory."""
    hasher = new_hasher()
    hasher.update(data)
    return finish(hasher)


def digest_stream(f: io.RawIOBase, sink: Callable[[memoryview], object] | None = None) -> tuple[str, int]:
    """The digest and length of what is left to read from the open file ``f``, each chunk also given
    to ``sink``. Plain reads into one reused buffer, not mmap: a file truncated while it is mapped
    kills the process with SIGBUS, and a user may rewrite a checkpoint while trtbuild reads it."""
    hasher = new_hasher()
    buffer = bytearray(CHUNK_SIZE)
    view, size = memoryview(buffer), 0
    while count := f.readinto(buffer):
        hasher.update(view[:count])
        if sink is not None:
            sink(view[:count])
        size += count
    return finish(hasher), size


def digest_file(path: Path | str) -> str:
    """The digest of a file's content."""
    with open(open_regular(path), "rb", buffering=0) as f:
        return digest_stream(f)[0]


def _i64(value: int) -> int:
    """Fold an unsigned 64-bit number (inode, device) into sqlite's signed INTEGER range."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= (1 << 63) else value


Signature = tuple[int, int, int, int, int]


def _signature(st: os.stat_result) -> Signature:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, _i64(st.st_ino), _i64(st.st_dev))


def _row_checksum(path: str, signature: Signature, digest: str) -> str:
    """A checksum of a row's fields: a flipped byte in the database cannot yield another digest."""
    return hashlib.sha256(repr((path, signature, digest)).encode()).hexdigest()[:32]


STAT_CACHE_NAME = "stat-cache.sqlite"  # under the cache root, beside cas/ and ac/


class StatCache:
    """``(abs path, size, mtime_ns, ctime_ns, inode, dev) -> digest``, shared by processes through sqlite."""

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
        if self.db_path.parent.is_dir() and not os.access(self.db_path.parent, os.W_OK):
            return self._connect_read_only()
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

    def _connect_read_only(self) -> sqlite3.Connection | None:
        """A read-only cache (a CI consumer's mount) is read as it is, never written: `immutable`
        because no writer can change it, which also lets sqlite read a WAL database without creating
        its -shm file. No database, or an unreadable one, only means hashing files: the run's note
        already says the cache is read-only, so this is not worth a warning."""
        try:
            uri = f"{self.db_path.absolute().as_uri()}?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            conn.execute(f"SELECT 1 FROM {_TABLE} LIMIT 1")
        except (sqlite3.Error, OSError, ValueError) as exc:
            _log.debug("read-only stat cache %s not used: %s", self.db_path, exc)
            self._disabled = True
            return None
        self._local.conn = (os.getpid(), conn)
        return conn

    def _disable(self, exc: BaseException) -> None:
        if not self._disabled:
            _log.warning("stat cache %s unusable (%s); hashing files without it", self.db_path, exc)
        self._disabled = True

    # -- queries ------------------------------------------------------------------------------------
    def lookup(self, path: Path | str, st: os.stat_result) -> str | None:
        """The cached hash if the file's size, mtime, ctime, inode and device are unchanged, else None."""
        conn = self._connect()
        if conn is None:
            return None
        try:
            where = os.path.abspath(path)
            row = conn.execute(
                f"SELECT size, mtime_ns, ctime_ns, ino, dev, digest, checksum FROM {_TABLE} WHERE path = ?",
                (where,),
            ).fetchone()
        except sqlite3.Error as exc:
            _log.debug("stat cache lookup failed: %s", exc)
            return None
        signature = _signature(st)
        if row is None or tuple(row[:5]) != signature or not is_digest(row[5]):
            return None
        if row[6] != _row_checksum(where, signature, row[5]):
            return None
        return str(row[5])

    def record(self, path: Path | str, st: os.stat_result, digest: str) -> None:
        """Remember ``digest`` for the file as ``st`` describes it, unless its mtime is too recent."""
        if time.time_ns() - st.st_mtime_ns < RACY_WINDOW_NS:
            return
        conn = self._connect()
        if conn is None:
            return
        where, signature = os.path.abspath(path), _signature(st)
        try:
            conn.execute(
                f"INSERT OR REPLACE INTO {_TABLE}"
                " (path, size, mtime_ns, ctime_ns, ino, dev, digest, checksum)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (where, *signature, digest, _row_checksum(where, signature, digest)),
            )
        except sqlite3.Error as exc:
            _log.debug("stat cache write failed: %s", exc)

    def forget(self, path: Path | str) -> None:
        """Drop the entry for a path (e.g. a blob that was found corrupt and deleted)."""
        conn = self._connect()
        if conn is None:
            return
        try:
            conn.execute(f"DELETE FROM {_TABLE} WHERE path = ?", (os.path.abspath(path),))
        except sqlite3.Error as exc:
            _log.debug("stat cache delete failed: %s", exc)

    def hash_file(self, path: Path | str) -> str:
        """The file's digest, from the cache when the file is unchanged, else hashed and cached."""
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"not a regular file: {path}")
        cached = self.lookup(path, st)
        if cached is not None:
            return cached
        digest = digest_file(path)
        # Only trust the hash if the file did not change while we read it.
        after = os.stat(path)
        if _signature(after) == _signature(st):
            self.record(path, st, digest)
        return digest

    def close(self) -> None:
        """Close this thread's connection (if it belongs to this process)."""
        cached: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if cached is not None:
            if cached[0] == os.getpid():
                cached[1].close()
            self._local.conn = None


class FileHasher:
    """The digests of the user's files that tasks read (model code, checkpoints, calibration data), with
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
