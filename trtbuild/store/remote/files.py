"""The remote cache's files, through fsspec: the same layout as the local cache's blobs and entries.

Layout under the URL::

    cas/<first 2 hex>/<hex>        blobs (digest blake3:<hex>)
    ac/<first 2>/<key>.json        action entries (action_cache.py's format, digest included)
    tmp/                           a shared folder's temp files (renamed into place when complete)

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
import os
from pathlib import Path
from typing import Any

from trtbuild.store.action_cache import check_key
from trtbuild.store.cas import check_digest
from trtbuild.store.hashing import digest_hex
from trtbuild.store.remote.settings import RemoteSettings

# Bounded waits, so that an unreachable or stalled server costs seconds, not minutes: a connection
# gets CONNECT_TIMEOUT_S, a read READ_TIMEOUT_S between bytes, and a request ATTEMPTS tries in all
# (one retry of a refused connection, a timeout, a 5xx or throttling). A server that accepts and
# never answers costs ATTEMPTS * READ_TIMEOUT_S once; the run then goes on without it.
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 10
ATTEMPTS = 2


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
        fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", MaxKeys=1)

    def read_entry(self, key: str) -> bytes | None:
        try:
            data: bytes = self._filesystem().cat_file(self.entry_path(key))
        except FileNotFoundError:
            return None
        return data

    def fetch_blob(self, digest: str, dest: Path) -> bool:
        """Download the blob to ``dest`` (a new file); False if the remote does not hold it."""
        try:
            self._filesystem().get_file(self.blob_path(digest), str(dest))
        except FileNotFoundError:
            return False
        return True

    def blob_size(self, digest: str) -> int | None:
        try:
            info = self._filesystem().info(self.blob_path(digest))
        except FileNotFoundError:
            return None
        size = info.get("size")
        return size if isinstance(size, int) else None

    # -- writes (whole files only: see the module doc)
    def put_blob(self, digest: str, source: Path) -> None:
        self._put(str(source), self.blob_path(digest))

    def put_entry(self, key: str, data: bytes) -> None:
        fs = self._filesystem()
        target = self.entry_path(key)
        if self.settings.scheme == "file":
            temp = self._temp_name(target)
            fs.makedirs(temp.rsplit("/", 1)[0], exist_ok=True)
            fs.pipe_file(temp, data)
            self._rename(temp, target)
        else:
            fs.pipe_file(target, data)

    def _put(self, source: str, target: str) -> None:
        fs = self._filesystem()
        if self.settings.scheme == "file":
            temp = self._temp_name(target)
            fs.makedirs(temp.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(source, temp)
            self._rename(temp, target)
        else:
            fs.put_file(source, target)

    def _temp_name(self, target: str) -> str:
        name = target.rsplit("/", 1)[1]
        return f"{self._root}/tmp/.{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp"

    def _rename(self, temp: str, target: str) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.replace(temp, target)  # atomic within the shared folder's filesystem
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

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
                        "connect_timeout": CONNECT_TIMEOUT_S,
                        "read_timeout": READ_TIMEOUT_S,
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
