"""Local content-addressed store (CAS) and action cache (AC); see :class:`Store`."""

from trtbuild.store.action_cache import ActionResult
from trtbuild.store.cas import CorruptBlob, FileDigest
from trtbuild.store.hashing import FileHasher, digest_file
from trtbuild.store.store import Store, default_cache_dir

__all__ = [
    "ActionResult",
    "CorruptBlob",
    "FileDigest",
    "FileHasher",
    "Store",
    "default_cache_dir",
    "digest_file",
]
