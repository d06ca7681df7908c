"""The local store: content-addressed blobs plus an action cache (task key -> outputs), Bazel CAS/AC style.

Layout under ``root``::

    cas/<first 2 hex>/<sha256>     blobs, read-only (0o444)
    ac/<first 2>/<key>.json        action results
    tmp/                           temp files and dirs; same filesystem, so renames are atomic
    locks/<name>.lock              inter-process locks
    stat-cache.sqlite              (path, size, mtime_ns, inode, dev) -> sha256

Blobs are hard-linked into build directories by :meth:`Store.materialize`, so a user editing such a file
in place edits the blob too (chmod 0o444 does not stop root). Reads therefore verify: the stat cache
notices the changed size/mtime, the blob is re-hashed, found corrupt and deleted, and the action entry
that named it becomes a miss.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trtbuild.errors import StoreError
from trtbuild.store._fsutil import rmtree_force
from trtbuild.store.action_cache import ActionCache, ActionResult
from trtbuild.store.cas import ContentStore, FileDigest
from trtbuild.store.hashing import StatCache
from trtbuild.store.locking import file_lock


def default_cache_dir() -> Path:
    """``$TRTBUILD_CACHE_DIR``, else ``$XDG_CACHE_HOME/trtbuild``, else ``~/.cache/trtbuild``."""
    explicit = os.environ.get("TRTBUILD_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):  # the XDG spec says relative values are to be ignored
        return Path(xdg) / "trtbuild"
    return Path.home() / ".cache" / "trtbuild"


class Store:
    """A local CAS + action cache rooted at ``root``; directories are created when first needed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self._tmp = self.root / "tmp"
        self._stat_cache = StatCache(self.root / "stat-cache.sqlite")
        self._cas = ContentStore(self.root / "cas", self._tmp, self._stat_cache)
        self._ac = ActionCache(self.root / "ac", self._tmp)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- hashing ------------------------------------------------------------------------------------
    def hash_file(self, path: Path) -> str:
        """sha256 of a file, re-using the stat cache when size, mtime, inode and device are unchanged."""
        try:
            return self._stat_cache.hash_file(path)
        except OSError as exc:
            raise StoreError(f"cannot hash {path}: {exc.strerror or exc}") from exc

    # -- blobs --------------------------------------------------------------------------------------
    def put_file(self, path: Path, *, move: bool = False) -> FileDigest:
        """Ingest a file into the CAS atomically; idempotent. With ``move`` the source is consumed."""
        return self._cas.put_file(path, move=move)

    def blob_path(self, digest: str) -> Path:
        return self._cas.blob_path(digest)

    def has_blob(self, digest: str) -> bool:
        return self._cas.has_blob(digest)

    def verify_blob(self, digest: str) -> bool:
        """True if the blob exists and its content matches; a corrupt blob is deleted and False returned."""
        return self._cas.verify_blob(digest)

    def materialize(self, digest: str, dest: Path) -> None:
        """Make ``dest`` hold the blob's content (hard link, or copy across filesystems), atomically."""
        self._cas.materialize(digest, dest)

    # -- actions ------------------------------------------------------------------------------------
    def get_action(self, key: str) -> ActionResult | None:
        """The cached result, or None on a miss. Damaged entries and entries whose blobs are missing or
        corrupt count as misses and are removed."""
        result, st = self._ac.read(key)
        if result is None:
            if st is not None:
                self._ac.remove(key, expected=st)
            return None
        for digest in result.outputs.values():
            blob = self._cas.blob_path(digest.hash)
            try:
                size_ok = blob.stat().st_size == digest.size
            except OSError:
                size_ok = False
            if not size_ok or not self._cas.verify_blob(digest.hash):
                self._ac.remove(key, expected=st)
                return None
        return result

    def put_action(self, key: str, result: ActionResult) -> None:
        """Record an action result atomically; every output blob must already be in the CAS."""
        for name, digest in result.outputs.items():
            blob = self._cas.blob_path(digest.hash)
            try:
                size = blob.stat().st_size
            except OSError:
                raise StoreError(
                    f"cannot record action {key}: output {name!r} (blob {digest.hash}) is not in the store; "
                    "put_file it first"
                ) from None
            if size != digest.size:
                raise StoreError(
                    f"cannot record action {key}: output {name!r} says {digest.size} bytes "
                    f"but blob {digest.hash} has {size}"
                )
        try:
            self._ac.write(key, result)
        except OSError as exc:
            raise StoreError(f"cannot record action {key}: {exc.strerror or exc}") from exc

    # -- scratch space and locks --------------------------------------------------------------------
    @contextmanager
    def temp_dir(self, prefix: str) -> Iterator[Path]:
        """A fresh directory under ``tmp/`` (same filesystem as the CAS), removed afterwards, even on error.

        Move outputs out of it with ``put_file(..., move=True)`` to avoid copying them."""
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(prefix=prefix, dir=self._tmp))
        except OSError as exc:
            raise StoreError(f"cannot create a temp dir under {self._tmp}: {exc.strerror or exc}") from exc
        try:
            yield path
        finally:
            rmtree_force(path)

    @contextmanager
    def lock(self, name: str, timeout: float = 600.0) -> Iterator[None]:
        """An inter-process exclusive lock; StoreError if not acquired within ``timeout`` seconds."""
        with file_lock(self.root / "locks", name, timeout):
            yield
