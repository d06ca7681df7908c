"""Credentials S3 refuses (moto enforcing auth: the access key is unknown to it): one warning that
says the remote cannot be used and why, naming neither the access key nor the secret, also in
trtbuild's debug log. (botocore's own debug log carries the key in its Authorization header:
TRTBUILD_LOG=debug shows trtbuild's debug records only, cli/__init__.py.)"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.remote.s3 import ACCESS_KEY, SECRET_KEY, S3Remote, aws_environment, moto_server
from trtbuild.store import Store
from trtbuild.store.remote.layer import RemoteStore
from trtbuild.store.remote.settings import parse_remote_url


def test_refused_credentials_are_one_warning_without_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trtbuild")
    with moto_server(tmp_path / "moto.log", INITIAL_NO_AUTH_ACTION_COUNT="0") as server:
        for name, value in aws_environment(server.endpoint).items():
            monkeypatch.setenv(name, value)
        remote = S3Remote(server, "rs3-denied", "team/cache")
        store = RemoteStore(Store(tmp_path / "cache"), parse_remote_url(remote.url, source="test"))
        assert store.get_action("a" * 64) is None
        assert store.get_action("b" * 64) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "remote cache s3://rs3-denied/team/cache cannot be used" in warnings[0]
    assert "PermissionError" in warnings[0] and "Access Key Id" in warnings[0]
    logged = caplog.text + "".join(str(r.exc_info) for r in caplog.records)
    assert ACCESS_KEY not in logged and SECRET_KEY not in logged
