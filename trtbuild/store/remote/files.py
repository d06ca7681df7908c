"""The remote cache's files, through fsspec: the same layout as the local cache's blobs and entries.

Layout under the URL::

    cas/<first 2 hex>/<hex>        blobs (digest blake3:<hex>)
    ac/<first 2>/<key>.json        action entries (action_cache.py's format, digest included)
    tmp/                           a shared folder's temp files (renamed into place when complete;
                                   a killed writer's are removed by a later writer after an hour)

What a reader can see is always whole:

- S3 makes an object visible only when its PUT (or multipart upload) completes; a writer killed
  mid-upload leaves nothing under the key (an unfinished multipart upload is invisible, and a
  bucket lifecycle rule removes it).
- In a shared folder a file is written under ``tmp/`` and renamed into place, which is atomic on
  one filesystem (NFS included).

Two writers of the same key both succeed: the last rename or PUT wins, and both wrote whole files.
fsspec (and s3fs) are imported when the remote is first used, never by a run the local cache serves.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trtbuild.store._fsutil import open_regular
from trtbuild.store.action_cache import DamagedEntry, check_key
from trtbuild.store.cas import check_digest
from trtbuild.store.hashing import digest_hex
from trtbuild.store.remote.settings import READ_TIMEOUT_S, RemoteSettings

# Bounded waits, so that an unreachable or stalled server costs seconds, not minutes: a connection
# gets CONNECT_TIMEOUT_S (or the settings' timeout_s if lower), a read the settings' timeout_s
# between bytes (READ_TIMEOUT_S unless TRTBUILD_REMOTE_TIMEOUT says otherwise), and a request
# ATTEMPTS tries in all (one retry of a refused connection, a timeout, a 5xx or throttling). A
# server that accepts and never answers costs ATTEMPTS * timeout_s once; the run then goes on
# without it.
CONNECT_TIMEOUT_S = 5.0
ATTEMPTS = 2
# botocore's read timeout bounds the gap between two bytes, not a request: a server that drips one
# byte every few seconds held a run for ever. So each S3 request (its retries included) has a total
# limit, fsspec's own (its sync layer wraps the request's coroutine in asyncio.wait_for, which
# cancels it): REQUEST_FLOOR_S, above what the bounded retries of a server that never answers cost
# (raised with a longer timeout_s: a total limit below it would cut the user's timeout short),
# plus the time its bytes take at MIN_RATE, so a large blob on a slow but working link still comes
# through (a 100 MB engine gets 30 s + 400 s), while a slower link counts as down.
REQUEST_FLOOR_S = 30.0
MIN_RATE = 256 * 1024  # bytes per second: 2 Mbit/s
# A temp file in a shared folder's tmp/ untouched this long belongs to a writer that was killed (a
# live upload changes its mtime with every write): any writer may remove it. An hour leaves room for
# clock skew between the machines and the file server.
STALE_TEMP_S = 3600
# An action entry is a few kilobytes of JSON: a remote file under an entry's name is read up to this.
ENTRY_LIMIT = 16 << 20


class RemoteFiles:
    """Reads and writes of one remote cache's blobs and entries. Not found is None or False;
    anything else (unreachable, denied, timed out, a 5xx) raises what fsspec raised."""

    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        self._fs: Any = None
        self._root = settings.path.rstrip("/")

    # -- paths
    def entry_path(self, key: str) -> str:
        check_key(key)
        return f"{self._root}/ac/{key[:2]}/{key}.json"

    def blob_path(self, digest: str) -> str:
        name = digest_hex(check_digest(digest))
        return f"{self._root}/cas/{name[:2]}/{name}"

    # -- reads
    def check_reachable(self) -> None:
        """Raise if the remote cannot be used at all: a shared folder that is not there (an
        unmounted share must not be filled locally), a bucket that does not exist or is denied."""
        fs = self._filesystem()
        if self.settings.scheme == "file":
            if not os.path.isdir(self._root):
                raise FileNotFoundError(f"the shared folder {self._root} does not exist (not mounted?)")
            return
        bucket, _, prefix = self._root.partition("/")
        # One key of the cache's own prefix, not a listing of the bucket: a shared bucket's policy
        # may let a team list only its prefix (an s3:prefix condition). Raises if the bucket is
        # missing (FileNotFoundError), denied (PermissionError) or the server is down.
        with _bounded(limit := self._limit(0)):
            fs.call_s3(
                "list_objects_v2",
                Bucket=bucket,
                Prefix=f"{prefix}/" if prefix else "",
                MaxKeys=1,
                timeout=limit,
            )

    def read_entry(self, key: str) -> bytes | None:
        """The entry's bytes; None if there is none. DamagedEntry if a shared folder holds something
        other than a file under its name (a FIFO would block open() until someone wrote to it), an S3
        object is empty, or either is bigger than ENTRY_LIMIT: no more than that is ever read (a
        2 GB file under an entry's name took 2.6 GB of memory and 12 s)."""
        path = self.entry_path(key)
        try:
            if self.settings.scheme == "file":
                with open(open_regular(path), "rb") as stream:
                    data: bytes = stream.read(ENTRY_LIMIT + 1)
            else:
                with _bounded(limit := self._limit(0)):
                    data = self._filesystem().cat_file(path, start=0, end=ENTRY_LIMIT + 1, timeout=limit)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno in (errno.EINVAL, errno.EISDIR):  # S3: an empty object has no byte range
                raise DamagedEntry(
                    "not a regular file" if self.settings.scheme == "file" else "empty"
                ) from None
            raise
        if len(data) > ENTRY_LIMIT:
            raise DamagedEntry(f"over {ENTRY_LIMIT // (1 << 20)} MiB")
        return data

    def fetch_blob(self, digest: str, dest: Path, size: int) -> bool:
        """Download the blob to ``dest`` (a new file); False if the remote does not hold it. ``size``
        is what the entry names: never more than ``size + 1`` bytes are written, so that a remote file
        bigger than its entry says (a buggy writer's, a sparse file) cannot fill the local disk; the
        caller's size check then refuses it. Something other than a file under the blob's name (a
        folder, a FIFO) is written as an empty file, which the caller refuses the same way."""
        path = self.blob_path(digest)
        if self.settings.scheme == "file":
            return self._copy_bounded(path, dest, size)
        fs = self._filesystem()
        try:
            # The size first (a HEAD): an object bigger than named is not downloaded at all.
            with _bounded(limit := self._limit(0)):
                remote_size = fs.info(path, timeout=limit).get("size")
        except FileNotFoundError:
            return False
        if remote_size != size:
            dest.write_bytes(b"")
            return True
        with _bounded(limit := self._limit(size)):
            fs.get_file(path, str(dest), timeout=limit)
        return True

    @staticmethod
    def _copy_bounded(path: str, dest: Path, size: int) -> bool:
        try:
            fd = open_regular(path)
        except FileNotFoundError:
            return False
        except OSError as error:
            if error.errno not in (errno.EINVAL, errno.EISDIR):
                raise
            dest.write_bytes(b"")  # not a regular file: damage, refused by the caller's size check
            return True
        left = size + 1
        with open(fd, "rb") as source, open(dest, "xb") as target:
            while left > 0:
                chunk = source.read(min(left, 1 << 20))
                if not chunk:
                    break
                target.write(chunk)
                left -= len(chunk)
        return True

    def blob_size(self, digest: str) -> int | None:
        try:
            if self.settings.scheme == "file":
                info = self._filesystem().info(self.blob_path(digest))
            else:
                with _bounded(limit := self._limit(0)):
                    info = self._filesystem().info(self.blob_path(digest), timeout=limit)
        except FileNotFoundError:
            return None
        size = info.get("size")
        return size if isinstance(size, int) else None

    # -- writes (whole files only: see the module doc)
    def put_blob(self, digest: str, source: Path) -> None:
        self._put(str(source), self.blob_path(digest))

    def put_entry(self, key: str, data: bytes) -> None:
        target = self.entry_path(key)
        if self.settings.scheme == "file":
            self._write_whole(target, lambda temp: self._filesystem().pipe_file(temp, data))
        else:
            with _bounded(limit := self._limit(len(data))):
                self._filesystem().pipe_file(target, data, timeout=limit)

    def _put(self, source: str, target: str) -> None:
        if self.settings.scheme == "file":
            self._write_whole(target, lambda temp: self._filesystem().put_file(source, temp))
        else:
            with _bounded(limit := self._limit(os.path.getsize(source))):
                self._filesystem().put_file(source, target, timeout=limit)

    def _write_whole(self, target: str, write: Callable[[str], None]) -> None:
        """Write a shared folder's file under tmp/ and rename it into place. A write that fails
        part-way (the share is full, an I/O error, an interrupt) removes its temp file: tmp/ would
        otherwise keep it for good, since no reader ever looks there."""
        temp = f"{self._root}/tmp/.{target.rsplit('/', 1)[1]}.{os.getpid()}.{os.urandom(6).hex()}.tmp"
        os.makedirs(os.path.dirname(temp), exist_ok=True)
        try:
            write(temp)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            _clear_folder_at(target, temp)
            os.replace(temp, target)  # atomic within the shared folder's filesystem
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def sweep_stale_temp(self) -> int:
        """Remove the temp files killed writers left in a shared folder's tmp/ (STALE_TEMP_S ago or
        more); how many. Best effort: a file another writer removed first, or one this user may not
        remove, is passed over. S3 keeps no temp files (an unfinished upload is the bucket's)."""
        if self.settings.scheme != "file":
            return 0
        removed, now = 0, time.time()
        try:
            entries = list(os.scandir(f"{self._root}/tmp"))
        except OSError:
            return 0
        for entry in entries:
            try:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_S
                if stale and entry.name.endswith(".tmp") and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        return removed

    def _limit(self, size: int) -> float:
        """An S3 request's total time limit, for `size` bytes to move (see REQUEST_FLOOR_S)."""
        return _floor(self.settings.timeout_s) + size / MIN_RATE

    def _filesystem(self) -> Any:
        if self._fs is None:
            import fsspec  # only when the remote is first used: a locally cached run never imports it

            if self.settings.scheme == "s3":
                # s3fs takes its timeouts and retries as class attributes, not arguments (an unknown
                # argument goes on to aiobotocore's session, which raises TypeError): botocore's
                # Config bounds each request, and the instance's `retries` s3fs's own loop below.
                self._fs = fsspec.filesystem(
                    "s3",
                    skip_instance_cache=True,
                    use_listings_cache=False,  # other machines write: a listing is stale at once
                    config_kwargs={
                        "connect_timeout": min(CONNECT_TIMEOUT_S, self.settings.timeout_s),
                        "read_timeout": self.settings.timeout_s,
                        # "max_attempts" would count retries (2 is 3 tries); "total_max_attempts" counts tries
                        "retries": {"total_max_attempts": ATTEMPTS, "mode": "standard"},
                    },
                )
                # s3fs retries a timeout or a dropped connection 5 times (with sleeps) around
                # botocore's own attempts: 1 here leaves the retrying to botocore alone.
                self._fs.retries = 1
            else:
                self._fs = fsspec.filesystem("file", skip_instance_cache=True)
        return self._fs


def _clear_folder_at(target: str, temp: str) -> None:
    """A folder where a blob or an entry belongs is damage (readers already refuse it): a file
    cannot be renamed onto it, and that failure took the remote down for the run. It is renamed
    into tmp/ beside `temp`, out of every reader's way at once, then removed (best effort)."""
    if not os.path.isdir(target) or os.path.islink(target):
        return
    aside = f"{temp}.damaged"
    try:
        os.rename(target, aside)
    except FileNotFoundError:  # another writer moved it first
        return
    import shutil  # here: shutil loads bz2 and lzma, which a run the local cache serves never needs

    shutil.rmtree(aside, ignore_errors=True)


def _floor(timeout_s: float) -> float:
    """REQUEST_FLOOR_S, raised by what a timeout longer than the default adds to ATTEMPTS tries."""
    return REQUEST_FLOOR_S + ATTEMPTS * max(0.0, timeout_s - READ_TIMEOUT_S)


@contextlib.contextmanager
def _bounded(limit: float) -> Iterator[None]:
    """fsspec's timeout says nothing (FSTimeoutError has no message): the warning says what it was."""
    try:
        yield
    except TimeoutError as error:  # FSTimeoutError is one (asyncio.TimeoutError is TimeoutError)
        raise TimeoutError(
            f"no complete answer within {limit:.0f} s (a request may take {REQUEST_FLOOR_S:.0f} s, more "
            f"with a TRTBUILD_REMOTE_TIMEOUT over {READ_TIMEOUT_S:.0f} s, plus 1 s per "
            f"{MIN_RATE // 1024} KiB it moves)"
        ) from error
