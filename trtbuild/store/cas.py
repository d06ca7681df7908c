"""The content-addressed blob store: ``cas/<first 2 hex>/<hex>`` for the blob of digest ``blake3:<hex>``,
read-only files, atomic ingest.

A blob that an older trtbuild stored under its sha256 hex is never named by a BLAKE3 digest (nor
would it verify as one): it is an unreferenced blob, and gc removes it like any other."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from trtbuild.errors import StoreError
from trtbuild.files import temp_path
from trtbuild.store._fsutil import read_regular, rmtree_force, unlink_quietly
from trtbuild.store.hashing import (
    DIGEST_PREFIX,
    StatCache,
    digest_bytes,
    digest_file,
    digest_hex,
    digest_stream,
    is_digest,
)

_HEX_NAME = re.compile(r"[0-9a-f]{64}")
BLOB_MODE = 0o444
REFRESH_AFTER_S = 60.0


@dataclass(frozen=True)
class FileDigest:
    """A blob's identity: the content's digest (``blake3:<64 lowercase hex>``) and its size in bytes."""

    hash: str
    size: int


class CorruptBlob(StoreError):
    """A blob whose content does not hash to its name: it has been deleted from the store."""


def check_digest(digest: str) -> str:
    if not is_digest(digest):
        raise StoreError(f"not a content digest (blake3:<64 hex digits>): {digest!r}")
    return digest


def digest_of_blob_name(name: str) -> str | None:
    """The digest whose blob file is called ``name``, or None for a file that is no blob's."""
    return DIGEST_PREFIX + name if _HEX_NAME.fullmatch(name) else None


class ContentStore:
    """Blobs under ``<root>/cas``; temp files are made in ``tmp_dir`` on the same filesystem."""

    def __init__(self, cas_dir: Path, tmp_dir: Path, stat_cache: StatCache) -> None:
        self.cas_dir = cas_dir
        self.tmp_dir = tmp_dir
        self.stat_cache = stat_cache

    def blob_path(self, digest: str) -> Path:
        name = digest_hex(check_digest(digest))
        return self.cas_dir / name[:2] / name

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        path = self.blob_path(digest)
        try:
            return read_regular(path)[0]
        except FileNotFoundError as exc:
            raise StoreError(f"blob {digest} is not in the store (at {path})") from exc
        except OSError as exc:
            raise StoreError(f"cannot read blob {digest} at {path}: {exc.strerror or exc}") from exc

    def read_verified(self, digest: str) -> bytes:
        """The blob's content, checked against its name: through the stat cache when the open file's
        size, mtime, ctime, inode and device are those it recorded, else by hashing the bytes read.
        A corrupt blob is deleted and CorruptBlob raised."""
        path = self.blob_path(digest)
        try:
            data, st = read_regular(path)
        except FileNotFoundError as exc:
            raise StoreError(f"blob {digest} is not in the store (at {path})") from exc
        except OSError as exc:
            raise StoreError(f"cannot read blob {digest} at {path}: {exc.strerror or exc}") from exc
        if self.stat_cache.lookup(path, st) == digest:
            return data
        if len(data) == st.st_size and digest_bytes(data) == digest:
            self.stat_cache.record(path, st, digest)
            return data
        self._discard(path)
        raise CorruptBlob(f"blob {digest_hex(digest)[:12]} does not hash to its name: deleted")

    def local_path(self, digest: str) -> Path:
        path = self.blob_path(digest)
        if not path.is_file():
            raise StoreError(f"blob {digest} is not in the store (at {path})")
        return path

    def verify_blob(self, digest: str) -> bool:
        """Re-hash the blob (through the stat cache); delete it and return False if it is damaged."""
        path = self.blob_path(digest)
        try:
            actual = self.stat_cache.hash_file(path)
        except FileNotFoundError:
            return False
        except OSError:
            actual = ""
        if actual == digest:
            return True
        self._discard(path)
        return False

    def _discard(self, path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            rmtree_force(path)
        else:
            with contextlib.suppress(OSError):
                unlink_quietly(path)
        self.stat_cache.forget(path)

    # -- ingest -------------------------------------------------------------------------------------
    def put_file(self, path: Path, *, move: bool = False) -> FileDigest:
        src = Path(path)
        try:
            st = os.stat(src)
        except OSError as exc:
            raise StoreError(f"cannot store {src}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"cannot store {src}: not a regular file")
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(self.tmp_dir, "blob")
        moved = False
        try:
            if move:
                moved = self._rename_into(src, tmp)
            digest = _hash_path(tmp) if moved else _copy_and_hash(src, tmp)
            result = self._commit(tmp, digest)
        except BaseException as exc:
            if moved:
                # Give the caller their file back rather than leaving it stranded in tmp/.
                try:
                    os.rename(tmp, src)
                except OSError:
                    unlink_quietly(tmp)
            else:
                unlink_quietly(tmp)
            if isinstance(exc, OSError):
                raise StoreError(f"cannot store {src}: {exc.strerror or exc}") from exc
            raise
        if move and not moved:
            unlink_quietly(src)
        return result

    @staticmethod
    def _rename_into(src: Path, tmp: Path) -> bool:
        """Move ``src`` to ``tmp``; False when that needs a copy (another filesystem)."""
        try:
            os.rename(src, tmp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EACCES):
                return False
            raise
        return True

    def _commit(self, tmp: Path, digest: FileDigest) -> FileDigest:
        """Publish a fully written temp file as the blob for ``digest`` (or drop it if already present)."""
        dest = self.blob_path(digest.hash)
        if dest.is_file() and self.verify_blob(digest.hash):
            unlink_quietly(tmp)
            _refresh_mtime(dest)
            return digest
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, BLOB_MODE)
        os.replace(tmp, dest)
        # rename() is a no-op if tmp and dest are already links to the same inode: remove the extra name.
        unlink_quietly(tmp)
        with contextlib.suppress(OSError):
            self.stat_cache.record(dest, os.stat(dest), digest.hash)
        return digest

    # -- output -------------------------------------------------------------------------------------
    def materialize(self, digest: str, dest: Path) -> None:
        """Give ``dest`` the blob's content: a hard link when possible, else a copy; atomic replace."""
        blob = self.blob_path(digest)
        dest = Path(dest)
        try:
            blob_st = os.stat(blob)
        except FileNotFoundError as exc:
            raise StoreError(f"blob {digest} is not in the store at {blob}; cannot create {dest}") from exc
        try:
            dest_st: os.stat_result | None = os.stat(dest, follow_symlinks=False)
        except FileNotFoundError:
            dest_st = None
        except OSError as exc:
            raise StoreError(f"cannot create {dest}: {exc.strerror or exc}") from exc
        if dest_st is not None and stat.S_ISREG(dest_st.st_mode):
            if os.path.samestat(dest_st, blob_st):
                return
            if dest_st.st_size == blob_st.st_size:
                try:
                    if self.stat_cache.hash_file(dest) == digest:
                        return  # e.g. an earlier copy across filesystems
                except OSError:
                    pass
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = temp_path(dest.parent, dest.name)
            try:
                try:
                    os.link(blob, tmp)
                except OSError:
                    import shutil  # only this fallback needs it: a no-op keeps its links and skips it

                    shutil.copyfile(blob, tmp)
                os.replace(tmp, dest)
                # If another process linked ``dest`` to the same blob inode after our stat above, tmp and
                # dest are now links to one file and rename() does nothing (POSIX): drop the stray name.
                unlink_quietly(tmp)
            except BaseException:
                unlink_quietly(tmp)
                raise
            self._check_linked(blob, dest, digest)
        except OSError as exc:
            raise StoreError(f"cannot create {dest} from blob {digest}: {exc.strerror or exc}") from exc

    def _check_linked(self, blob: Path, dest: Path, digest: str) -> None:
        """Re-hash what was just linked or copied to ``dest`` (the cold path only: a no-op finds its
        files linked already). A blob that does not hash to its name leaves neither ``dest`` nor
        itself behind (CorruptBlob). The link changed the blob's ctime: its stat is recorded anew,
        so the next read need not hash it again."""
        before = os.stat(dest)
        actual = digest_file(dest)
        if actual != digest:
            unlink_quietly(dest)
            self._discard(blob)
            raise CorruptBlob(f"blob {digest_hex(digest)[:12]} does not hash to its name: deleted")
        with contextlib.suppress(OSError):
            after = os.stat(blob)
            if os.path.samestat(before, after) and _same_content_stat(before, after):
                self.stat_cache.record(blob, after, digest)


def _refresh_mtime(blob: Path) -> None:
    """Mark an existing blob as just stored, so gc's grace period spares it until the run that stored it
    records an action entry and a root that reference it.

    Touching changes the stat signature, so the next verify re-hashes the blob once; skipping blobs
    touched within the last minute keeps a task that re-produces the same output from paying that on
    every store (a gc grace period shorter than a minute would not protect anything anyway)."""
    with contextlib.suppress(OSError):
        if time.time() - os.stat(blob).st_mtime > REFRESH_AFTER_S:
            os.utime(blob)


def _same_content_stat(a: os.stat_result, b: os.stat_result) -> bool:
    """Nothing wrote to the file between the two stats (its ctime may differ: links)."""
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (b.st_size, b.st_mtime_ns, b.st_ctime_ns)


def _hash_path(path: Path) -> FileDigest:
    """Hash a file that was moved into tmp/, and fsync it so the blob survives a crash once published."""
    with open(path, "rb", buffering=0) as f:
        digest = FileDigest(*digest_stream(f))
        os.fsync(f.fileno())
    return digest


def _copy_and_hash(src: Path, dest: Path) -> FileDigest:
    """Copy ``src`` to a new file ``dest`` (fsynced), hashing the bytes as they are copied."""
    with open(src, "rb", buffering=0) as fin:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with open(fd, "wb", closefd=True) as fout:
            digest = FileDigest(*digest_stream(fin, fout.write))
            fout.flush()
            os.fsync(fout.fileno())
    return digest
