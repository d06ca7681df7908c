"""Content digests are BLAKE3 and name their algorithm, and nothing an older trtbuild stored (sha256
hex in action entries, blobs named by sha256, the stat cache's sha256 rows) is taken for one.

On 61db8bf every digest was bare sha256 hex: the first test fails there, and an old-style entry was
a hit. The end-to-end case (an old cache is a miss that rebuilds) is tests/e2e/test_blake3_cache.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import blake3
import pytest

from trtbuild.store import FileHasher, Store, digest_file
from trtbuild.store import hashing as hashing_module
from trtbuild.store.gc import collect_garbage
from trtbuild.store.hashing import is_digest

OLD_NS = 1_600_000_000_000_000_000  # 2020: outside the stat cache's racy window
KEY = "3f" + "a1" * 31


def old_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    return path


@pytest.mark.parametrize("size", [100_000, 5 * (1 << 20) + 5])
def test_every_way_of_hashing_a_file_gives_one_named_blake3_digest(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    f = old_file(tmp_path / "weights.bin", data)
    expected = "blake3:" + blake3.blake3(data).hexdigest()
    hasher = FileHasher(tmp_path / "cache")
    assert digest_file(f) == expected and is_digest(expected)
    assert hasher.hash_file(f) == expected  # hashed, then recorded in the stat cache
    assert FileHasher(tmp_path / "cache").hash_file(f) == expected  # read back from sqlite
    store = Store(tmp_path / "cache")
    stored = store.put_file(f)
    assert stored.hash == expected and stored.size == size
    assert store.verify_blob(expected)  # through the stat cache, as every cache hit does


def test_a_stat_cache_an_older_trtbuild_filled_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its rows hold sha256 hex under the very same (path, size, mtime, inode, device)."""
    f = old_file(tmp_path / "weights.bin", b"weights")
    root = tmp_path / "cache"
    root.mkdir()
    st = os.stat(f)
    db = sqlite3.connect(root / "stat-cache.sqlite")
    db.execute(
        "CREATE TABLE files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
        " ino INTEGER NOT NULL, dev INTEGER NOT NULL, sha256 TEXT NOT NULL)"
    )
    old_row = (
        str(f),
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
        st.st_dev,
        hashlib.sha256(b"weights").hexdigest(),
    )
    db.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)", old_row)
    db.commit()
    db.close()
    hashed: list[str] = []
    real = hashing_module.digest_file
    monkeypatch.setattr(hashing_module, "digest_file", lambda path: hashed.append(str(path)) or real(path))
    assert FileHasher(root).hash_file(f) == "blake3:" + blake3.blake3(b"weights").hexdigest()
    assert hashed == [str(f)]


def test_a_row_of_another_algorithm_in_the_stat_cache_is_a_miss(tmp_path: Path) -> None:
    """Even in this trtbuild's table, a stored value that is no BLAKE3 digest is never returned."""
    f = old_file(tmp_path / "weights.bin", b"weights")
    hasher = FileHasher(tmp_path / "cache")
    hasher.hash_file(f)
    db = sqlite3.connect(tmp_path / "cache" / "stat-cache.sqlite")
    db.execute(f"UPDATE {hashing_module._TABLE} SET digest = ?", ("sha256:" + "0" * 64,))
    db.commit()
    db.close()
    assert FileHasher(tmp_path / "cache").hash_file(f) == "blake3:" + blake3.blake3(b"weights").hexdigest()


def test_an_older_cache_entry_is_a_miss_and_its_blob_is_garbage(tmp_path: Path) -> None:
    """An action entry and blob as 61db8bf stored them: bare sha256 hex, blob named by it."""
    store = Store(tmp_path / "cache")
    content = b"an old model.onnx"
    sha = hashlib.sha256(content).hexdigest()
    blob = store.root / "cas" / sha[:2] / sha
    blob.parent.mkdir(parents=True)
    blob.write_bytes(content)
    entry = store.root / "ac" / KEY[:2] / f"{KEY}.json"
    entry.parent.mkdir(parents=True)
    outputs = {"model.onnx": {"hash": sha, "size": len(content)}}
    entry.write_text(json.dumps({"version": 1, "outputs": outputs, "meta": {}}))
    assert store.get_action(KEY) is None  # a miss, not a crash: the task runs again
    assert not entry.exists()
    # The old blob is no BLAKE3 blob: it does not verify as the digest its name would spell, and gc,
    # which sees it as unreferenced, removes it once it is past the grace period.
    os.utime(blob, (1, 1))
    assert [digest for digest, _, _ in store.iter_blobs()] == [f"blake3:{sha}"]
    report = collect_garbage(store, grace_seconds=60)
    assert report.blobs_removed == 1 and not blob.exists()


def test_fsck_does_not_call_an_older_blob_damage(tmp_path: Path) -> None:
    """A blob an older trtbuild named by its sha256 is garbage for gc, not corruption: before,
    `trtbuild fsck` on a cache that had been used by one reported each as "its content hashes to
    blake3:..." (116 such findings, exit 1, on this machine's default cache)."""
    from trtbuild.store.fsck import check_store

    store = Store(tmp_path / "cache")
    content = b"an old model.onnx"
    sha = hashlib.sha256(content).hexdigest()
    old = store.root / "cas" / sha[:2] / sha
    old.parent.mkdir(parents=True)
    old.write_bytes(content)
    damaged = store.root / "cas" / ("ab" * 32)[:2] / ("ab" * 32)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"neither hash")
    check = check_store(store)
    assert check.checked["blobs"] == 2
    assert [finding.path for finding in check.findings] == [damaged]
