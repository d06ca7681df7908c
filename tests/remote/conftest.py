"""Fixtures of the remote cache's tests: one moto S3 server per test module (it takes a few seconds
to start); each test takes a fresh bucket from it (`S3Server.new_bucket`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.remote.s3 import S3Server, moto_server


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with moto_server(tmp_path_factory.mktemp("moto") / "server.log") as server:
        yield server
