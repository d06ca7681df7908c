"""trtbuild.files: atomic replacement, permissions, fsync and the temp file's place and cleanup."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from trtbuild import files


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_replaces_and_honours_the_umask(tmp_path: Path, umask: None) -> None:
    target = tmp_path / "config.lock"
    files.write_atomic(target, "naïve\n")
    assert target.read_bytes() == "naïve\n".encode()
    assert mode_of(target) == 0o664  # not mkstemp's 0600
    files.write_atomic(target, b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes"
    assert os.listdir(tmp_path) == ["config.lock"]


def test_mode_is_less_the_umask_and_keep_mode_keeps_the_files(tmp_path: Path, umask: None) -> None:
    entry = tmp_path / "entry.json"
    files.write_atomic(entry, b"{}", mode=0o644)
    assert mode_of(entry) == 0o644
    config = tmp_path / "config.yaml"
    config.write_text("a: 1\n")
    config.chmod(0o640)
    files.write_atomic(config, "a: 2\n", keep_mode=True)
    assert config.read_text() == "a: 2\n"
    assert mode_of(config) == 0o640
    fresh = tmp_path / "fresh.yaml"
    files.write_atomic(fresh, "b: 1\n", keep_mode=True)  # nothing to keep: as a new file
    assert mode_of(fresh) == 0o664


def test_temp_file_goes_in_temp_dir_and_is_removed_on_failure(tmp_path: Path) -> None:
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    (tmp_path / "taken").mkdir()  # renaming a file onto a directory fails
    with pytest.raises(OSError):
        files.write_atomic(tmp_path / "taken", b"data", temp_dir=temp_dir)
    assert os.listdir(temp_dir) == []
    with pytest.raises(OSError):
        files.write_atomic(tmp_path / "taken", b"data")
    assert sorted(os.listdir(tmp_path)) == ["taken", "tmp"]

    seen: list[str] = []
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(os.fspath(src))
        real_replace(src, dst)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", replace)
        files.write_atomic(tmp_path / "out.bin", b"data", temp_dir=temp_dir)
    assert Path(seen[0]).parent == temp_dir
    assert (tmp_path / "out.bin").read_bytes() == b"data"
    assert os.listdir(temp_dir) == []


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    files.write_atomic(tmp_path / "f", b"x", fsync=fsync)
    assert len(calls) == (1 if fsync else 0)


def test_write_if_changed_leaves_an_equal_file_alone(tmp_path: Path) -> None:
    target = tmp_path / "config.lock"
    assert files.write_if_changed(target, "one\n") is True
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    assert files.write_if_changed(target, "one\n") is False
    assert target.stat().st_mtime_ns == 1_000_000_000
    assert files.write_if_changed(target, "two\n") is True
    assert target.read_text() == "two\n"
    target.write_bytes(b"\xff\xfe not utf-8")  # undecodable: different, replaced
    assert files.write_if_changed(target, "two\n") is True
    assert target.read_text() == "two\n"
