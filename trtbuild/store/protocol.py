"""What the rest of trtbuild may ask of a cache: the store protocol.

The planner, the executor, reports and debug tools see a cache only through :class:`CacheStore`:
blobs by digest, action results by key, local files for tools that take a path, scratch space and
locks. :class:`~trtbuild.store.store.Store` (the local cache) implements it, and so does
:class:`~trtbuild.store.remote.layer.RemoteStore`, which puts a shared remote cache (fsspec: a
shared folder, S3) behind a local one. Where the cache keeps anything is the store's business: code
outside :mod:`trtbuild.store` never builds a path under :attr:`CacheStore.root` (a test holds it
to that), it asks for :meth:`CacheStore.local_path` or :meth:`CacheStore.materialize`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from trtbuild.store.action_cache import ActionResult
from trtbuild.store.cas import FileDigest
from trtbuild.store.hashing import FileHasher
from trtbuild.store.scratch import Swept
from trtbuild.store.validated import ParsedConfigs, ValidatedDocuments


class CacheStore(Protocol):
    """Blobs (content-addressed), action results (task key -> outputs), scratch space and locks."""

    @property
    def root(self) -> Path:
        """The local cache folder, to name in messages. Not a layout to build paths in."""
        ...

    @property
    def read_only(self) -> bool:
        """Whether the local cache cannot be written (a consumer's: everything must be cached)."""
        ...

    @property
    def toolchains_dir(self) -> Path:
        """A local folder where tasks keep copies of their tools across runs."""
        ...

    def has_entries(self) -> bool:
        """Whether the local cache holds any action entry at all (an empty cache has nothing to read)."""
        ...

    def file_hasher(self) -> FileHasher:
        """Digests of the user's files (model code, data), with the local cache's stat cache."""
        ...

    def validated_documents(self) -> ValidatedDocuments: ...

    def parsed_configs(self) -> ParsedConfigs: ...

    # -- blobs
    def put_file(self, path: Path, *, move: bool = False) -> FileDigest: ...

    def read_blob(self, digest: str) -> bytes: ...

    def read_verified(self, digest: str) -> bytes: ...

    def local_path(self, digest: str) -> Path: ...

    def has_blob(self, digest: str) -> bool: ...

    def verify_blob(self, digest: str) -> bool: ...

    def materialize(self, digest: str, dest: Path) -> None: ...

    # -- action results
    def get_action(
        self, key: str, *, outputs: Collection[str] | None = None, task: str | None = None, fetch: bool = True
    ) -> ActionResult | None:
        """The cached result, or None. With ``fetch=False`` (planning) a remote hit is returned as
        its checked entry says, its blobs not downloaded: the caller must not read them."""
        ...

    def put_action(self, key: str, result: ActionResult) -> None: ...

    def drop_action(self, key: str, why: str, task: str | None = None) -> None: ...

    def share(self, key: str, result: ActionResult, *, again: bool = False) -> None:
        """Make sure a result this cache holds is where other machines look (a remote cache): a
        Ray node's local hit, which the driver fetches from there; with `again`, its blobs are
        uploaded even if the remote has the entry (a node found a blob of it damaged there).
        Nothing for a local cache."""
        ...

    # -- GC roots, scratch space, locks
    def add_root(self, name: str, keys: Iterable[str], *, lock_path: Path | None = None) -> None: ...

    def add_run_root(self, keys: Iterable[str]) -> bool: ...

    def temp_dir(self, prefix: str) -> AbstractContextManager[Path]: ...

    def sweep_temp(self) -> Swept: ...

    def lock(self, name: str, timeout: float = 600.0) -> AbstractContextManager[None]: ...

    def notes(self) -> list[str]:
        """What the run's summary should say about the cache (e.g. what a remote cache served)."""
        ...
