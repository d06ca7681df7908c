"""A remote that answers, slowly: one byte a second through a relay on 127.0.0.1 (tests/remote/
fault_servers.py: dripping) in front of moto. botocore's read timeout never fires (each byte comes
within it); before the fix a run waited for every request to drip through (its first answer alone,
some 300 bytes, took 5 minutes). Each request has a total time limit (store/remote/files.py:
REQUEST_FLOOR_S, lowered here so the test takes seconds): one warning, and the run does without the
remote."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tests.remote.fault_servers import dripping
from tests.remote.s3 import S3Server, aws_environment
from trtbuild.store import Store
from trtbuild.store.remote import files
from trtbuild.store.remote.layer import RemoteStore
from trtbuild.store.remote.settings import parse_remote_url

pytestmark = pytest.mark.slow


def test_a_remote_that_drips_its_answers_is_a_fault_within_the_time_limit(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(files, "REQUEST_FLOOR_S", 3.0)
    remote = s3_server.new_bucket()
    caplog.set_level(logging.WARNING, logger="trtbuild")
    with dripping(s3_server.endpoint, seconds_per_byte=1.0) as endpoint:
        for name, value in aws_environment(endpoint).items():
            monkeypatch.setenv(name, value)
        store = RemoteStore(Store(tmp_path / "cache"), parse_remote_url(remote.url, source="test"))
        started = time.monotonic()
        assert store.get_action("a" * 64) is None
        assert store.get_action("b" * 64) is None  # the remote is down for the rest of the run
        waited = time.monotonic() - started
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"remote cache {remote.url} cannot be used" in warnings[0]
    assert "no complete answer within 3 s" in warnings[0], warnings[0]
    assert waited < 30, waited  # the limit, not the answer's 300 s of dripping
