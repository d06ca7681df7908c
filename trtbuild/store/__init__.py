"""Local content-addressed store (CAS) and action cache (AC); see :class:`Store`. Callers see the
store protocol (:class:`CacheStore`); a remote cache sits behind it (remote/)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trtbuild.store.action_cache import ActionResult
from trtbuild.store.cas import CorruptBlob, FileDigest
from trtbuild.store.hashing import FileHasher, digest_file
from trtbuild.store.protocol import CacheStore
from trtbuild.store.store import Store, default_cache_dir

if TYPE_CHECKING:
    from trtbuild.store.remote.settings import RemoteSettings

__all__ = [
    "ActionResult",
    "CacheStore",
    "CorruptBlob",
    "FileDigest",
    "FileHasher",
    "Store",
    "default_cache_dir",
    "digest_file",
    "open_store",
]


def open_store(cache_dir: Path | None = None, remote: RemoteSettings | None = None) -> CacheStore:
    """The local cache at ``cache_dir`` (default: :func:`default_cache_dir`), behind ``remote``'s
    shared cache when one is given."""
    local = Store(cache_dir or default_cache_dir())
    if remote is None:
        return local
    from trtbuild.store.remote.layer import RemoteStore  # a run without a remote never loads it

    return RemoteStore(local, remote)
