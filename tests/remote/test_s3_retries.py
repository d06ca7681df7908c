"""How often the remote cache's S3 client tries a request that fails: ATTEMPTS times in all (botocore's
tries), whatever the request, against a real server on 127.0.0.1 that closes every connection.

s3fs wraps its calls in a retry loop of its own (5 tries, with sleeps) around botocore's attempts,
for errors it deems transient (a closed connection, a read timeout): a remote that went silent in
the middle of a run would cost 5 * ATTEMPTS * READ_TIMEOUT_S per request. files.py sets that loop
to one try, leaving the retrying to botocore."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.remote.fault_servers import hanging_up
from tests.remote.s3 import aws_environment
from trtbuild.store.remote.files import ATTEMPTS, RemoteFiles
from trtbuild.store.remote.settings import parse_remote_url

KEY = "0" * 64
DIGEST = "blake3:" + "1" * 64

REQUESTS: dict[str, Callable[[RemoteFiles, Path], object]] = {
    "check": lambda files, _: files.check_reachable(),
    "entry": lambda files, _: files.read_entry(KEY),
    "blob": lambda files, folder: files.fetch_blob(DIGEST, folder / "blob", 1),
    "size": lambda files, _: files.blob_size(DIGEST),
    "publish": lambda files, _: files.put_entry(KEY, b"{}"),
}


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_a_failing_request_is_tried_attempts_times(
    request_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hanging_up() as (endpoint, accepted):
        for name, value in aws_environment(endpoint).items():
            monkeypatch.setenv(name, value)
        files = RemoteFiles(parse_remote_url("s3://bucket/prefix", source="test"))
        with pytest.raises(Exception):  # noqa: B017 (whatever s3fs raises: layer.py takes any)
            REQUESTS[request_name](files, tmp_path)
        tries = len(accepted)
    # Each of botocore's ATTEMPTS tries is 2 connections: aiohttp sends an idempotent request (GET,
    # HEAD, PUT) again at once when the server hangs up without answering. s3fs's own loop would
    # multiply this by 5.
    assert tries == 2 * ATTEMPTS
