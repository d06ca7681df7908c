"""An S3 remote that answered at first and stops in the middle of a run (its server stopped): the
next request fails, that is one warning, and the rest of the run neither asks nor publishes. A
bucket that does not exist is found at the first lookup: one warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.remote.s3 import aws_environment, moto_server
from trtbuild.store import ActionResult, Store
from trtbuild.store.remote.layer import RemoteStore
from trtbuild.store.remote.settings import parse_remote_url


def test_a_remote_stopped_mid_run_is_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trtbuild.store")
    local = Store(tmp_path / "cache")
    source = tmp_path / "output"
    source.write_bytes(b"an output")
    result = ActionResult({"out": local.put_file(source)}, {})
    with moto_server(tmp_path / "moto.log") as server:
        bucket = server.new_bucket()
        for name, value in aws_environment(server.endpoint).items():
            monkeypatch.setenv(name, value)
        store = RemoteStore(local, parse_remote_url(bucket.url, source="test"))
        assert store.get_action("a" * 64) is None  # a miss: the remote is up, and holds nothing
        store.put_action("b" * 64, result)
        assert any(name.endswith(f"{'b' * 64}.json") for name in bucket.objects())
    assert caplog.records == []

    assert store.get_action("c" * 64) is None  # the server is gone: a miss, and a warning
    store.put_action("d" * 64, result)  # kept locally, not published: no second warning
    assert store.get_action("e" * 64) is None
    assert [record.getMessage() for record in caplog.records if "remote cache" in record.getMessage()]
    assert len(caplog.records) == 1, [record.getMessage() for record in caplog.records]
    assert store.local.get_action("d" * 64) == result


def test_a_missing_bucket_is_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trtbuild.store")
    with moto_server(tmp_path / "moto.log") as server:
        for name, value in aws_environment(server.endpoint).items():
            monkeypatch.setenv(name, value)
        url = "s3://rs3-no-such-bucket/team/cache"
        store = RemoteStore(Store(tmp_path / "cache"), parse_remote_url(url, source="test"))
        assert store.get_action("a" * 64) is None
        assert store.get_action("b" * 64) is None
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1, warnings
    assert f"remote cache {url} cannot be used (FileNotFoundError" in warnings[0], warnings
