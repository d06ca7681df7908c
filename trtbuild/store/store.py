"""The local store: content-addressed blobs plus an action cache (task key -> outputs), Bazel CAS/AC style.

Layout under ``root``::

    cas/<first 2 hex>/<hex>        blobs (digest blake3:<hex>), read-only (0o444)
    ac/<first 2>/<key>.json        action results
    roots/<name>.json              GC roots: the keys a lock file or a recent run needs (see roots.py)
    tmp/                           temp files and dirs; same filesystem, so renames are atomic
    locks/<name>.lock              inter-process locks
    validated/<first 2>/<digest>   configs that passed schema validation (see validated.py)
    stat-cache.sqlite              (path, size, mtime_ns, ctime_ns, inode, dev) -> digest
    toolchains/                    tools that tasks keep copies of across runs (the build worker's
                                   TensorRT packages at a fixed-length path: backends/trt/recipe.py)

Blobs are hard-linked into build directories by :meth:`Store.materialize`, so a user editing such a file
in place edits the blob too (chmod 0o444 does not stop root). Reads therefore verify: the stat cache
notices the changed size, mtime or ctime (a write changes ctime, and `utime` cannot set it back), the
blob is re-hashed, found corrupt and deleted, and the action entry that named it becomes a miss, with
a warning. Action entries check their own digest on every read (action_cache.py); a blob is re-hashed
in full whenever it is linked into a folder (the cold path: a no-op links nothing); `trtbuild fsck`
(store/fsck.py) re-hashes everything, which finds a change that left no trace in the metadata.

Garbage collection (:mod:`trtbuild.store.gc`) spares entries and blobs modified within a grace period, so
uses refresh mtimes: a cache hit touches its action entry, and storing a blob that is already present
touches the blob. Without that, a concurrent run could lose an old entry it just read, or a blob it just
"stored", before it records its GC root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from trtbuild.errors import StoreError
from trtbuild.store._fsutil import rmtree_force, unlink_quietly
from trtbuild.store.action_cache import ActionCache, ActionResult, DamagedEntry, check_key
from trtbuild.store.cas import ContentStore, FileDigest, digest_of_blob_name
from trtbuild.store.hashing import STAT_CACHE_NAME, FileHasher, StatCache, digest_hex
from trtbuild.store.locking import file_lock
from trtbuild.store.roots import Root, Roots
from trtbuild.store.scratch import USERS, Swept, cannot_write, owned_dir, sweep
from trtbuild.store.validated import ParsedConfigs, ValidatedDocuments

# A cache hit refreshes its action entry's mtime at most this often: with gc's default grace of an
# hour, an entry a run has read is spared for 50 minutes or more (as long as a cold matrix's tasks
# take), and the no-op runs in between write nothing.
ENTRY_REFRESH_AFTER_S = 600.0
_MISSING = "is not in the cache"
log = logging.getLogger("trtbuild.store")


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
        self._users_lock = self.root / "locks" / USERS  # scratch.py: who may own what is in tmp/
        self._stat_cache = StatCache(self.root / STAT_CACHE_NAME)
        self._cas = ContentStore(self.root / "cas", self._tmp, self._stat_cache)
        self._ac = ActionCache(self.root / "ac", self._tmp)
        self._roots = Roots(self.root / "roots", self._tmp)
        self._warned: set[tuple[str, str]] = set()  # (key, why): each damaged entry is said once

    def validated_documents(self) -> ValidatedDocuments:
        """The configs that passed schema validation before (nothing is created until one does)."""
        return ValidatedDocuments(self.root / "validated", self._tmp)

    def parsed_configs(self) -> ParsedConfigs:
        """Configs parsed before, by the digest of their bytes (spec/yamlmarks.py)."""
        return ParsedConfigs(self.root / "validated", self._tmp)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def has_entries(self) -> bool:
        return self._ac.ac_dir.is_dir()

    def file_hasher(self) -> FileHasher:
        return FileHasher(self.root)

    def notes(self) -> list[str]:
        return []  # the local cache has nothing to add to a run's summary

    def share(self, key: str, result: ActionResult, *, again: bool = False) -> None:
        pass  # nobody else looks in a local cache through this one

    @property
    def toolchains_dir(self) -> Path:
        """Where tasks keep copies of their tools across runs (created by the task that needs it)."""
        return self.root / "toolchains"

    # -- blobs --------------------------------------------------------------------------------------
    def put_file(self, path: Path, *, move: bool = False) -> FileDigest:
        """Ingest a file into the CAS atomically; idempotent. With ``move`` the source is consumed."""
        return self._cas.put_file(path, move=move)

    def blob_path(self, digest: str) -> Path:
        """Where the blob would be in this store, whether or not it is there. The store's own layout:
        code outside :mod:`trtbuild.store` uses :meth:`read_blob` or :meth:`local_path`."""
        return self._cas.blob_path(digest)

    def read_blob(self, digest: str) -> bytes:
        """The blob's content, as stored: not re-hashed (:meth:`verify_blob` does that, and
        :meth:`get_action` has done it for the outputs of the result it returns). StoreError if the
        blob is not in the store (gc may have collected it) or cannot be read."""
        return self._cas.read_blob(digest)

    def read_verified(self, digest: str) -> bytes:
        """The blob's content, checked against its digest (through the stat cache when the file's
        metadata is what it recorded, else by hashing the bytes): what a run decides from, such as
        a gate's verdict. A corrupt blob is deleted and CorruptBlob (a StoreError) raised."""
        return self._cas.read_verified(digest)

    def local_path(self, digest: str) -> Path:
        """A local file holding the blob, for tools that take a path (onnx.load, ONNX Runtime).

        Read-only: do not write, move or delete it. Here it is the blob itself, valid until gc collects
        it; a remote store would fetch it first. StoreError if the blob is not in the store."""
        return self._cas.local_path(digest)

    def has_blob(self, digest: str) -> bool:
        return self._cas.has_blob(digest)

    def verify_blob(self, digest: str) -> bool:
        """True if the blob exists and its content matches; a corrupt blob is deleted and False returned."""
        return self._cas.verify_blob(digest)

    def materialize(self, digest: str, dest: Path) -> None:
        """Make ``dest`` hold the blob's content (hard link, or copy across filesystems), atomically.
        What is linked is re-hashed: a corrupt blob is deleted, ``dest`` is not left, and
        CorruptBlob (a StoreError) is raised. A ``dest`` already linked to the blob is left as is."""
        self._cas.materialize(digest, dest)

    # -- actions ------------------------------------------------------------------------------------
    def get_action(
        self, key: str, *, outputs: Collection[str] | None = None, task: str | None = None, fetch: bool = True
    ) -> ActionResult | None:
        """The cached result, or None on a miss. An entry that fails its own digest, names other
        outputs than ``outputs`` (the kind's declared ones), or whose blobs are corrupt is a miss: it
        is removed, with one warning naming ``task``. A missing blob (gc took it) is a quiet miss.

        Blobs are checked through the stat cache (size, mtime, ctime, inode, device), so an
        unchanged blob is not re-hashed: a content change with no change of metadata at all is
        found by `trtbuild fsck`, which re-hashes everything. (``fetch`` is the remote layer's.)"""
        try:
            result, st = self._ac.read(key)
        except DamagedEntry as damaged:
            self._drop_entry(key, damaged.stat, f"its action entry is damaged ({damaged})", task)
            return None
        if result is None:
            if st is not None:  # an older trtbuild's entry: a clean miss, rewritten when the task runs
                self._ac.remove(key, expected=st)
            return None
        if outputs is not None and set(result.outputs) != set(outputs):
            found = sorted(result.outputs)
            why = f"its action entry names outputs {found}, the task makes {sorted(outputs)}"
            self._drop_entry(key, st, why, task)
            return None
        for name, digest in result.outputs.items():
            problem = self._blob_problem(digest)
            if problem is not None:
                if problem != _MISSING:
                    self._drop_entry(key, st, f"its output {name} {problem}", task)
                else:
                    self._ac.remove(key, expected=st)
                return None
        # Mark the entry as just used, so a concurrent gc's grace period spares it (see module doc);
        # not when it was marked within ENTRY_REFRESH_AFTER_S, so a no-op run writes nothing.
        if st is not None and time.time() - st.st_mtime > ENTRY_REFRESH_AFTER_S:
            with contextlib.suppress(OSError):
                os.utime(self._ac.path(key))
        return result

    def _blob_problem(self, digest: FileDigest) -> str | None:
        """What is wrong with an output's blob (a corrupt one is deleted), or None."""
        try:
            size = self._cas.blob_path(digest.hash).stat().st_size
        except OSError:
            return _MISSING
        if size != digest.size:
            self._cas.verify_blob(digest.hash)  # deletes it, unless it is right and the entry wrong
            return f"has {size} bytes, its entry says {digest.size}"
        if not self._cas.verify_blob(digest.hash):
            return f"(blob {digest_hex(digest.hash)[:12]}) does not hash to its name"
        return None

    def drop_action(self, key: str, why: str, task: str | None = None) -> None:
        """Remove an entry found unusable after it was read (its gate document is damaged, a blob
        turned out corrupt when linked): a miss from now on, said once in a warning."""
        self._drop_entry(key, None, why, task)

    def _drop_entry(self, key: str, st: os.stat_result | None, why: str, task: str | None) -> None:
        self._ac.remove(key, expected=st)
        if (key, why) not in self._warned:
            self._warned.add((key, why))
            who = task or f"action {key[:12]}"
            # A read-only cache keeps the entry (and the damaged blob): the task is not cached there.
            done = "not used (the cache is read-only)" if self.read_only else "removed, the task runs again"
            log.warning("%s: the cache's result cannot be trusted, %s: %s", who, why, done)

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

    # -- enumeration and removal, for garbage collection --------------------------------------------
    def iter_action_keys(self) -> Iterator[str]:
        """The key of every action entry on disk (damaged entries included; stray files skipped)."""
        for path in _iter_shard_files(self._ac.ac_dir):
            key = path.name.removesuffix(".json")
            if path.name.endswith(".json") and _valid(check_key, key) and path.parent.name == key[:2]:
                yield key

    def read_action_entry(self, key: str) -> tuple[ActionResult | None, os.stat_result | None]:
        """The raw entry (None if damaged or of an older format) and its stat, or (None, None) if
        absent. Unlike :meth:`get_action` it neither checks the blobs nor marks the entry as used."""
        try:
            return self._ac.read(key)
        except DamagedEntry as damaged:
            return None, damaged.stat

    def remove_action(self, key: str, *, older_than: float | None = None) -> os.stat_result | None:
        """Delete an action entry; with ``older_than`` (unix seconds) only if its mtime is older.

        Returns the stat of the removed file, or None if nothing was removed. The mtime is checked right
        before the unlink, so an entry that a run has just used is spared."""
        return _remove_if_older(self._ac.path(key), older_than)

    def iter_blobs(self) -> Iterator[tuple[str, int, float]]:
        """``(digest, size, mtime)`` of every blob in the CAS; stray files are skipped."""
        for path in _iter_shard_files(self._cas.cas_dir):
            digest = digest_of_blob_name(path.name)
            if digest is not None and path.parent.name == path.name[:2]:
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield digest, st.st_size, st.st_mtime

    def remove_blob(self, digest: str, *, older_than: float | None = None) -> os.stat_result | None:
        """Delete a blob; with ``older_than`` (unix seconds) only if its mtime is older. Returns the stat of
        the removed file (``st_nlink > 1`` means it is still hard-linked elsewhere, e.g. into ``build/``),
        or None if nothing was removed."""
        path = self._cas.blob_path(digest)
        removed = _remove_if_older(path, older_than)
        if removed is not None:
            self._stat_cache.forget(path)
        return removed

    def iter_temp_entries(self) -> Iterator[tuple[Path, int, float]]:
        """``(path, total bytes, newest mtime in it)`` for each top-level entry of ``tmp/``.

        A directory's newest mtime covers everything inside it, so a task still writing deep in its work
        directory keeps the whole directory young."""
        try:
            entries = list(self._tmp.iterdir())
        except OSError:
            return
        for entry in entries:
            size, newest = _tree_size_and_mtime(entry)
            if newest is not None:
                yield entry, size, newest

    def remove_temp_entry(self, path: Path) -> None:
        """Delete a file or directory tree directly under ``tmp/``."""
        if path.parent != self._tmp:
            raise StoreError(f"{path} is not directly under the store's tmp/ ({self._tmp})")
        if path.is_dir() and not path.is_symlink():
            rmtree_force(path)
        else:
            unlink_quietly(path)

    # -- GC roots -----------------------------------------------------------------------------------
    def add_root(self, name: str, keys: Iterable[str], *, lock_path: Path | None = None) -> None:
        """Record (or replace) the GC root ``roots/<name>.json`` holding ``keys``, atomically.

        Names: ``roots.lock_root_name(lock_path)`` with ``lock_path`` whenever a lock file is written
        (replacing that lock's previous root); a run's root is :meth:`add_run_root`'s."""
        self._roots.add(name, keys, lock_path)

    def add_run_root(self, keys: Iterable[str]) -> bool:
        """Record the keys a run used (``roots.Roots.add_run``): nothing is written when a recent root
        already holds exactly these keys. True when the root was written."""
        return self._roots.add_run(keys)

    def roots(self) -> list[Root]:
        """Every readable GC root; damaged root files are skipped with a warning."""
        return self._roots.read_all()

    def remove_root(self, name: str) -> None:
        self._roots.remove(name)

    @property
    def read_only(self) -> bool:
        """Whether the cache cannot be written (a read-only mount, or no permission): a consumer's."""
        return cannot_write(self.root)

    # -- scratch space and locks --------------------------------------------------------------------
    @contextmanager
    def temp_dir(self, prefix: str) -> Iterator[Path]:
        """A fresh directory under ``tmp/`` (same filesystem as the CAS), removed afterwards, even on error.

        Move outputs out of it with ``put_file(..., move=True)`` to avoid copying them. Owned by this
        process through a held flock (scratch.py): the next run removes it if this process dies."""
        with owned_dir(self._tmp, prefix, self._users_lock) as path:
            yield path

    def sweep_temp(self) -> Swept:
        """Remove what dead processes left in ``tmp/`` (scratch.py): how many entries went, and
        whether this process is the cache's only user."""
        return sweep(self._tmp, self._users_lock)

    @contextmanager
    def lock(self, name: str, timeout: float = 600.0) -> Iterator[None]:
        """An inter-process exclusive lock; StoreError if not acquired within ``timeout`` seconds."""
        with file_lock(self.root / "locks", name, timeout):
            yield


def _valid(check: Callable[[str], str], name: str) -> bool:
    try:
        check(name)
    except StoreError:
        return False
    return True


def _iter_shard_files(top: Path) -> Iterator[Path]:
    """Files one level below the shard directories of ``top`` (``top/<xx>/<name>``)."""
    try:
        shards = sorted(p for p in top.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return
    for shard in shards:
        try:
            names = sorted(shard.iterdir())
        except OSError:
            continue
        yield from names


def _remove_if_older(path: Path, older_than: float | None) -> os.stat_result | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if older_than is not None and st.st_mtime >= older_than:
        return None
    try:
        os.unlink(path)
    except OSError:
        return None
    return st


def _tree_size_and_mtime(path: Path) -> tuple[int, float | None]:
    """Total bytes of regular files and the newest mtime under ``path`` (None if it vanished)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0, None
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size, st.st_mtime
    size, newest = 0, st.st_mtime
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            try:
                child = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            newest = max(newest, child.st_mtime)
            if stat.S_ISREG(child.st_mode):
                size += child.st_size
    return size, newest
