"""digest_file and the stat cache: unchanged files are not re-hashed; changed size/mtime/inode are."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import blake3
import pytest

from trtbuild.errors import StoreError
from trtbuild.store import FileHasher, Store, digest_file
from trtbuild.store import hashing as hashing_module

OLD_NS = 1_600_000_000_000_000_000  # 2020; far outside the racy window


def b3(data: bytes) -> str:
    """The digest trtbuild must give these bytes: BLAKE3 as the reference library computes it, named."""
    return "blake3:" + blake3.blake3(data).hexdigest()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every real hash computation done through the stat cache."""
    seen: list[str] = []
    real = hashing_module.digest_file

    def counting(path: Path | str) -> str:
        seen.append(str(path))
        return real(path)

    monkeypatch.setattr(hashing_module, "digest_file", counting)
    return seen


def make_old(path: Path, data: bytes, mtime_ns: int = OLD_NS) -> Path:
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def test_digest_file_is_blake3_named(tmp_path: Path) -> None:
    """Sizes around the read chunk."""
    for size in [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 5 * (1 << 20) + 3]:
        data = os.urandom(size)
        p = tmp_path / f"f{size}"
        p.write_bytes(data)
        assert digest_file(p) == b3(data)
        assert digest_file(str(p)) == b3(data)
        p.unlink()


def test_unchanged_file_is_not_rehashed(tmp_path: Path, calls: list[str]) -> None:
    f = make_old(tmp_path / "input.bin", b"weights v1")
    store = FileHasher(tmp_path / "cache")
    expected = b3(b"weights v1")
    assert store.hash_file(f) == expected
    assert store.hash_file(f) == expected
    assert FileHasher(tmp_path / "cache").hash_file(f) == expected  # persisted in sqlite, shared
    assert len(calls) == 1
    assert (tmp_path / "cache" / "stat-cache.sqlite").is_file()


def test_stat_cache_rehashes_a_file_edited_with_its_mtime_restored(tmp_path: Path, calls: list[str]) -> None:
    """utime puts the mtime back but cannot set ctime: the edit is seen without a full re-hash of
    unchanged files (issue 13: a flipped blob byte with its mtime restored used to pass)."""
    f = make_old(tmp_path / "input.bin", b"AAAA")
    store = FileHasher(tmp_path / "cache")
    h_a = store.hash_file(f)
    with open(f, "r+b") as fh:
        fh.write(b"BBBB")
    os.utime(f, ns=(OLD_NS, OLD_NS))
    assert store.hash_file(f) == b3(b"BBBB") != h_a
    assert len(calls) == 2


def test_a_damaged_stat_cache_row_is_a_miss_not_a_wrong_digest(tmp_path: Path, calls: list[str]) -> None:
    """A row whose digest changed (a flipped byte in the database) fails its checksum."""
    f = make_old(tmp_path / "input.bin", b"AAAA")
    FileHasher(tmp_path / "cache").hash_file(f)
    db = sqlite3.connect(tmp_path / "cache" / "stat-cache.sqlite")
    (table,) = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchone()
    db.execute(f"UPDATE {table} SET digest = ?", (b3(b"forged"),))
    db.commit()
    db.close()
    assert FileHasher(tmp_path / "cache").hash_file(f) == b3(b"AAAA")
    assert len(calls) == 2


def test_size_or_inode_change_rehashes(tmp_path: Path, calls: list[str]) -> None:
    f = make_old(tmp_path / "input.bin", b"12345")
    store = FileHasher(tmp_path / "cache")
    store.hash_file(f)
    make_old(f, b"123456")  # size differs, mtime the same
    assert store.hash_file(f) == b3(b"123456")
    # replaced by a new file (new inode) with the same size and mtime
    tmp = make_old(tmp_path / "replacement", b"abcdef")
    os.replace(tmp, f)
    assert store.hash_file(f) == b3(b"abcdef")
    assert len(calls) == 3


def test_recently_modified_file_is_not_cached(tmp_path: Path, calls: list[str]) -> None:
    """A file modified just now could change again within the same mtime tick: never trust it."""
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"fresh")
    store = FileHasher(tmp_path / "cache")
    store.hash_file(f)
    store.hash_file(f)
    assert len(calls) == 2


def test_hash_file_errors_are_store_errors(tmp_path: Path) -> None:
    store = FileHasher(tmp_path / "cache")
    with pytest.raises(StoreError, match="missing"):
        store.hash_file(tmp_path / "missing")
    with pytest.raises(StoreError):
        store.hash_file(tmp_path)


def test_damaged_stat_cache_database_falls_back_to_hashing(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    (root / "stat-cache.sqlite").write_bytes(b"this is not a sqlite database" * 100)
    f = make_old(tmp_path / "f", b"data")
    assert FileHasher(root).hash_file(f) == b3(b"data")
    store = Store(root)
    assert store.verify_blob(store.put_file(f).hash)


def test_stat_cache_uses_wal(tmp_path: Path) -> None:
    store = FileHasher(tmp_path / "cache")
    store.hash_file(make_old(tmp_path / "f", b"x"))
    conn = sqlite3.connect(tmp_path / "cache" / "stat-cache.sqlite")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
