"""A remote blob bigger than its entry says is never downloaded past the entry's size (review of
issue 14): a shared folder's file (a buggy writer's, a sparse file) or an S3 object of gigabytes under
a blob's name used to be copied whole into the local cache's tmp/ before its size was checked, filling
the local disk. The task is a miss with one warning, as for any blob that does not hash to its name."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tests.remote.s3 import S3Server
from trtbuild.store.action_cache import ActionResult, encode
from trtbuild.store.cas import FileDigest
from trtbuild.store.hashing import digest_bytes, digest_hex
from trtbuild.store.remote.files import RemoteFiles
from trtbuild.store.remote.layer import RemoteStore
from trtbuild.store.remote.settings import parse_remote_url
from trtbuild.store.store import Store

KEY = "ab" * 32
CONTENT = b"the engine those bytes were named after"
HUGE = 1 << 30  # a sparse file: no disk used unless someone copies it


class Watched(RemoteFiles):
    """RemoteFiles that remembers how many bytes each download left in its destination."""

    downloaded: list[int]

    def fetch_blob(self, digest: str, dest: Path, size: int) -> bool:
        found = super().fetch_blob(digest, dest, size)
        self.downloaded.append(dest.stat().st_size if dest.exists() else -1)
        return found


def _share(tmp_path: Path) -> tuple[Path, str]:
    share = tmp_path / "share"
    digest = digest_bytes(CONTENT)
    entry = ActionResult({"model.engine": FileDigest(digest, len(CONTENT))}, {})
    (share / "ac" / KEY[:2]).mkdir(parents=True)
    (share / "ac" / KEY[:2] / f"{KEY}.json").write_bytes(encode(entry, KEY))
    blob = share / "cas" / digest_hex(digest)[:2] / digest_hex(digest)
    blob.parent.mkdir(parents=True)
    return share, str(blob)


@pytest.mark.parametrize("damage", ["sparse file", "folder"])
def test_an_oversized_or_odd_remote_blob_is_refused_without_copying_it(
    damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    share, blob = _share(tmp_path)
    if damage == "sparse file":
        with open(blob, "wb") as handle:
            handle.truncate(HUGE)
    else:
        os.makedirs(os.path.join(blob, "inside"))
    settings = parse_remote_url(str(share), source="test")
    files = Watched(settings)
    files.downloaded = []
    store = RemoteStore(Store(tmp_path / "cache"), settings, files)
    with caplog.at_level(logging.WARNING, logger="trtbuild.store"):
        assert store.get_action(KEY, outputs={"model.engine"}, task="tiny/fp32/build") is None
    assert files.downloaded and max(files.downloaded) <= len(CONTENT) + 1, files.downloaded
    said = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(said) == 1 and "tiny/fp32/build" in said[0] and "does not hash" in said[0], said
    assert store.notes() == []  # nothing fetched, and the remote is not taken for down
    assert store._state == "up"


def test_an_oversized_s3_blob_is_not_downloaded(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    remote = s3_server.new_bucket()
    for name, value in remote.environment().items():
        monkeypatch.setenv(name, value)
    digest = digest_bytes(CONTENT)
    entry = ActionResult({"model.engine": FileDigest(digest, len(CONTENT))}, {})
    remote.put(f"{remote.prefix}/ac/{KEY[:2]}/{KEY}.json", encode(entry, KEY))
    name = f"{remote.prefix}/cas/{digest_hex(digest)[:2]}/{digest_hex(digest)}"
    remote.put(name, CONTENT * 100_000)  # 3.9 MB where the entry names 39 bytes
    settings = parse_remote_url(remote.url, source="test")
    files = Watched(settings)
    files.downloaded = []
    store = RemoteStore(Store(tmp_path / "cache"), settings, files)
    with caplog.at_level(logging.WARNING, logger="trtbuild.store"):
        assert store.get_action(KEY, outputs={"model.engine"}, task="tiny/fp32/build") is None
    assert files.downloaded and max(files.downloaded) <= len(CONTENT) + 1, files.downloaded
    assert not [line for line in s3_server.requests(f"{remote.bucket}/{name}") if '"GET ' in line]
    said = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(said) == 1 and "does not hash" in said[0], said


def test_an_oversized_entry_is_damage_and_never_read_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    share, _ = _share(tmp_path)
    with open(share / "ac" / KEY[:2] / f"{KEY}.json", "r+b") as handle:
        handle.truncate(HUGE)  # the entry, then a gigabyte of zeros
    monkeypatch.setattr("trtbuild.store.remote.files.ENTRY_LIMIT", 1 << 16, raising=False)
    settings = parse_remote_url(str(share), source="test")
    files = RemoteFiles(settings)
    store = RemoteStore(Store(tmp_path / "cache"), settings, files)
    with caplog.at_level(logging.WARNING, logger="trtbuild.store"):
        assert store.get_action(KEY, outputs={"model.engine"}, task="tiny/fp32/build") is None
    said = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(said) == 1 and "tiny/fp32/build" in said[0] and "over" in said[0], said
    assert store._state == "up"


@pytest.mark.parametrize(
    ("content", "said_why"), [(b"", "empty"), (b" " * (1 << 17), "over")], ids=["empty", "oversized"]
)
def test_an_empty_or_oversized_s3_entry_is_damage(
    content: bytes,
    said_why: str,
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    remote = s3_server.new_bucket()
    for name, value in remote.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("trtbuild.store.remote.files.ENTRY_LIMIT", 1 << 16, raising=False)
    remote.put(f"{remote.prefix}/ac/{KEY[:2]}/{KEY}.json", content)
    settings = parse_remote_url(remote.url, source="test")
    store = RemoteStore(Store(tmp_path / "cache"), settings)
    with caplog.at_level(logging.WARNING, logger="trtbuild.store"):
        assert store.get_action(KEY, outputs={"model.engine"}, task="tiny/fp32/build") is None
    said = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(said) == 1 and "entry is damaged" in said[0] and said_why in said[0], said
    assert store._state == "up"
