"""CAS blobs: ingest, idempotence, atomicity on failure, verification, materialize, temp dirs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from trtbuild.errors import StoreError
from trtbuild.store import FileDigest, Store, digest_file
from trtbuild.store.hashing import digest_bytes


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if not p.is_dir()) if path.exists() else []


def test_store_creates_nothing_until_used(tmp_path: Path) -> None:
    Store(tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_put_file_roundtrip(store: Store, tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # spans several 1 MiB chunks
    src = write(tmp_path / "model.onnx", data)
    digest = store.put_file(src)
    assert digest == FileDigest(digest_bytes(data), len(data))
    blob = store.blob_path(digest.hash)
    assert digest.hash.startswith("blake3:")
    name = digest.hash.removeprefix("blake3:")
    assert blob == store.root / "cas" / name[:2] / name
    assert blob.read_bytes() == data
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    assert store.has_blob(digest.hash)
    assert store.verify_blob(digest.hash)
    assert src.read_bytes() == data  # copy mode leaves the source alone
    assert digest_file(src) == digest.hash
    assert files_under(store.root / "tmp") == []


def test_put_file_is_idempotent(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path / "a.bin", b"same bytes")
    b = write(tmp_path / "b.bin", b"same bytes")
    d1 = store.put_file(a)
    inode = store.blob_path(d1.hash).stat().st_ino
    d2 = store.put_file(b)
    d3 = store.put_file(a)
    assert d1 == d2 == d3
    assert store.blob_path(d1.hash).stat().st_ino == inode  # existing valid blob kept
    assert len(files_under(store.root / "cas")) == 1
    assert files_under(store.root / "tmp") == []


def test_empty_file(store: Store, tmp_path: Path) -> None:
    digest = store.put_file(write(tmp_path / "empty", b""))
    assert digest == FileDigest(digest_bytes(b""), 0)
    assert store.verify_blob(digest.hash)


def test_put_file_move_consumes_source(store: Store, tmp_path: Path) -> None:
    src = write(tmp_path / "out" / "engine.plan", b"engine bytes")
    src_inode = src.stat().st_ino
    digest = store.put_file(src, move=True)
    assert not src.exists()
    blob = store.blob_path(digest.hash)
    assert blob.read_bytes() == b"engine bytes"
    assert blob.stat().st_ino == src_inode  # renamed, not copied
    # moving a duplicate drops the source and keeps the existing blob
    dup = write(tmp_path / "out" / "dup.plan", b"engine bytes")
    assert store.put_file(dup, move=True) == digest
    assert not dup.exists()
    assert blob.stat().st_ino == src_inode
    assert files_under(store.root / "tmp") == []


def test_put_file_move_within_temp_dir(store: Store) -> None:
    with store.temp_dir("task-") as work:
        out = write(work / "model.onnx", b"onnx")
        digest = store.put_file(out, move=True)
    assert store.blob_path(digest.hash).read_bytes() == b"onnx"
    assert files_under(store.root / "tmp") == []


def test_put_of_materialized_file_is_harmless(store: Store, tmp_path: Path) -> None:
    digest = store.put_file(write(tmp_path / "src", b"payload"))
    dest = tmp_path / "build" / "out.bin"
    store.materialize(digest.hash, dest)
    assert store.put_file(dest) == digest
    assert store.put_file(dest, move=True) == digest  # same inode as the blob
    assert not dest.exists()
    assert store.blob_path(digest.hash).read_bytes() == b"payload"
    assert files_under(store.root / "tmp") == []


def test_failed_put_missing_source_leaves_nothing(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does-not-exist"):
        store.put_file(tmp_path / "does-not-exist")
    assert files_under(store.root / "cas") == []
    assert files_under(store.root / "tmp") == []


def test_failed_put_directory_leaves_nothing(store: Store, tmp_path: Path) -> None:
    d = tmp_path / "a-dir"
    d.mkdir()
    with pytest.raises(StoreError, match="not a regular file"):
        store.put_file(d)
    with pytest.raises(StoreError):
        store.put_file(d, move=True)
    assert d.is_dir()
    assert files_under(store.root / "cas") == []
    assert files_under(store.root / "tmp") == []


def test_crash_before_publish_leaves_no_partial_blob(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error after the temp copy is written but before the rename: no blob, no temp file left."""
    src = write(tmp_path / "big.bin", os.urandom(2 << 20))

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # not an OSError: cleanup must still happen

    with monkeypatch.context() as m:
        m.setattr(os, "replace", boom)
        with pytest.raises(KeyboardInterrupt):
            store.put_file(src)
    assert files_under(store.root / "cas") == []
    assert files_under(store.root / "tmp") == []
    # and the store still works afterwards
    assert store.verify_blob(store.put_file(src).hash)


def test_crash_during_move_returns_the_source(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = write(tmp_path / "engine.plan", b"precious")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", boom)
        with pytest.raises(StoreError, match="No space left"):
            store.put_file(src, move=True)
    assert src.read_bytes() == b"precious"
    assert files_under(store.root / "cas") == []
    assert files_under(store.root / "tmp") == []


def test_verify_blob_detects_and_removes_corruption(store: Store, tmp_path: Path) -> None:
    digest = store.put_file(write(tmp_path / "f", b"good content"))
    blob = store.blob_path(digest.hash)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"evil content")
    assert store.verify_blob(digest.hash) is False
    assert not blob.exists()
    assert not store.has_blob(digest.hash)
    assert store.verify_blob(digest.hash) is False  # missing blob
    # re-putting heals the store
    assert store.put_file(tmp_path / "f") == digest
    assert store.verify_blob(digest.hash)


def test_put_file_replaces_a_corrupt_existing_blob(store: Store, tmp_path: Path) -> None:
    src = write(tmp_path / "f", b"good content")
    digest = store.put_file(src)
    blob = store.blob_path(digest.hash)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"bad!")
    assert store.put_file(src) == digest
    assert blob.read_bytes() == b"good content"


def test_invalid_digest_is_rejected(store: Store) -> None:
    # "0" * 64: an older trtbuild's bare sha256 hex names no blob of this one.
    for bad in ["../../etc/passwd", "ABC", "g" * 64, "A" * 64, "", "0" * 64, "sha256:" + "0" * 64]:
        with pytest.raises(StoreError):
            store.blob_path(bad)
    assert store.has_blob("blake3:" + "0" * 64) is False


def test_materialize_hard_links_and_is_idempotent(store: Store, tmp_path: Path) -> None:
    digest = store.put_file(write(tmp_path / "src", b"engine"))
    dest = tmp_path / "build" / "deep" / "model.plan"
    store.materialize(digest.hash, dest)
    blob = store.blob_path(digest.hash)
    assert dest.read_bytes() == b"engine"
    assert os.path.samefile(dest, blob)
    mtime = dest.stat().st_mtime_ns
    store.materialize(digest.hash, dest)
    assert os.path.samefile(dest, blob)
    assert dest.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.plan"]  # no temp files left


def test_materialize_replaces_a_different_file(store: Store, tmp_path: Path) -> None:
    digest = store.put_file(write(tmp_path / "src", b"new engine"))
    dest = write(tmp_path / "build" / "model.plan", b"old engine, longer")
    other_link = tmp_path / "elsewhere"
    os.link(dest, other_link)
    store.materialize(digest.hash, dest)
    assert dest.read_bytes() == b"new engine"
    assert os.path.samefile(dest, store.blob_path(digest.hash))
    assert other_link.read_bytes() == b"old engine, longer"  # replaced, not overwritten in place


def test_materialize_replaces_a_symlink(store: Store, tmp_path: Path) -> None:
    digest = store.put_file(write(tmp_path / "src", b"content"))
    target = write(tmp_path / "target", b"something else")
    dest = tmp_path / "build" / "link"
    dest.parent.mkdir()
    dest.symlink_to(target)
    store.materialize(digest.hash, dest)
    assert not dest.is_symlink()
    assert dest.read_bytes() == b"content"
    assert target.read_bytes() == b"something else"


def test_materialize_missing_blob(store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not in the store"):
        store.materialize("blake3:" + "a" * 64, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_materialize_racing_another_materialize_leaves_no_temp_link(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process links ``dest`` to the blob between our checks and our rename: rename() onto a link
    to the same inode is a no-op, so the temp link must be removed explicitly."""
    digest = store.put_file(write(tmp_path / "src", b"content"))
    dest = tmp_path / "build" / "model.plan"
    real_link = os.link

    def link_then_race(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_link(src, dst)
        if not dest.exists():
            real_link(src, dest)  # the other process wins the race

    monkeypatch.setattr(os, "link", link_then_race)
    store.materialize(digest.hash, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.plan"]
    assert os.path.samefile(dest, store.blob_path(digest.hash))


def test_materialize_onto_a_directory_fails_cleanly(store: Store, tmp_path: Path) -> None:
    digest = store.put_file(write(tmp_path / "src", b"content"))
    dest = tmp_path / "build" / "model.plan"
    dest.mkdir(parents=True)
    with pytest.raises(StoreError, match=r"model\.plan"):
        store.materialize(digest.hash, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.plan"]


def test_edit_in_place_of_materialized_file_is_caught(store: Store, tmp_path: Path) -> None:
    """materialize hard-links, so editing build/ in place edits the blob: verification must notice."""
    digest = store.put_file(write(tmp_path / "src", b"original weights"))
    blob = store.blob_path(digest.hash)
    old = 1_600_000_000_000_000_000
    os.utime(blob, ns=(old, old))  # old enough for the stat cache to trust it
    dest = tmp_path / "build" / "model.onnx"
    store.materialize(digest.hash, dest)
    assert store.verify_blob(digest.hash)  # now cached
    os.chmod(dest, 0o644)  # chmod 0o444 does not stop a determined user (or root)
    with open(dest, "r+b") as f:
        f.write(b"EDITED")
    assert store.verify_blob(digest.hash) is False
    assert not blob.exists()
    assert dest.read_bytes() == b"EDITEDal weights"
    # the next build re-materializes a clean copy over the edited file
    store.put_file(tmp_path / "src")
    store.materialize(digest.hash, dest)
    assert dest.read_bytes() == b"original weights"


def test_temp_dir_is_removed(store: Store) -> None:
    with store.temp_dir("export-") as d:
        assert d.is_dir()
        assert d.parent == store.root / "tmp"
        assert d.name.startswith("export-")
        write(d / "sub" / "file", b"x")
    assert not d.exists()


def test_temp_dir_is_removed_on_error_even_if_read_only(store: Store) -> None:
    with pytest.raises(RuntimeError), store.temp_dir("build-") as d:
        write(d / "sub" / "file", b"x")
        os.chmod(d / "sub" / "file", 0o444)
        os.chmod(d / "sub", 0o555)
        raise RuntimeError("task failed")
    assert not d.exists()
    assert list((store.root / "tmp").iterdir()) == []


def test_read_blob_and_local_path(store: Store, tmp_path: Path) -> None:
    digest = store.put_file(write(tmp_path / "metrics.json", b'{"cosine": 1.0}'))
    assert store.read_blob(digest.hash) == b'{"cosine": 1.0}'
    local = store.local_path(digest.hash)
    assert local.read_bytes() == b'{"cosine": 1.0}'
    assert stat.S_IMODE(local.stat().st_mode) == 0o444  # the blob itself: read-only
    missing = digest_bytes(b"never stored")
    with pytest.raises(StoreError, match="not in the store"):
        store.read_blob(missing)
    with pytest.raises(StoreError, match="not in the store"):
        store.local_path(missing)
    with pytest.raises(StoreError):
        store.read_blob("../../etc/passwd")
