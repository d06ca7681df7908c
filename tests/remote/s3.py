"""A real S3 endpoint for the remote cache's tests and benchmarks: moto's standalone server, on
127.0.0.1 only, and the tiny project's clones that use it.

The trtbuild processes under test get an environment that points every AWS request at that server and
reads no AWS file of the machine's, so nothing leaves the loopback interface.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import TINY_CONFIG, TINY_MODEL

LOOPBACK = "127.0.0.1"
# Distinctive test credentials: a test greps every output for them (moto accepts any).
ACCESS_KEY = "AKIARS3ACCESSKEY7Q2X"
SECRET_KEY = "rs3-Secret-V4lue-never-printed-9f3b"
REGION = "us-east-1"
START_TIMEOUT_S = 60
_buckets = itertools.count()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def aws_environment(endpoint: str) -> dict[str, str]:
    """os.environ without the machine's AWS settings, pointed at `endpoint` with the test credentials."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.pop("TRTBUILD_REMOTE_CACHE", None)
    env.pop("TRTBUILD_REMOTE_READ_ONLY", None)
    env.pop("TRTBUILD_REMOTE_TIMEOUT", None)
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,  # no profile of the machine's
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",  # never ask 169.254.169.254 for credentials
    )
    return env


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    log: Path  # the server's output: a line per request

    def requests(self, name: str) -> list[str]:
        """The request lines so far that name the object `name` (bucket/key)."""
        return [line for line in self.log.read_text().splitlines() if f" /{name} HTTP" in line]

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self) -> S3Remote:
        bucket = f"rs3-test-{next(_buckets)}"
        self.client().create_bucket(Bucket=bucket)
        return S3Remote(self, bucket, "team/cache")


@dataclass(frozen=True)
class S3Remote:
    """A remote cache at s3://bucket/prefix on the test server."""

    server: S3Server
    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def environment(self) -> dict[str, str]:
        return aws_environment(self.server.endpoint)

    def objects(self) -> dict[str, bytes]:
        """Every object in the bucket (not only under the prefix): name -> bytes."""
        client = self.server.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
        return found

    def put(self, name: str, data: bytes) -> None:
        self.server.client().put_object(Bucket=self.bucket, Key=name, Body=data)

    def delete(self, name: str) -> None:
        self.server.client().delete_object(Bucket=self.bucket, Key=name)

    def copy_of(self) -> S3Remote:
        """A new bucket holding the same objects: a test may damage its copy."""
        copy = self.server.new_bucket()
        for name, data in self.objects().items():
            copy.put(name, data)
        return copy


@contextlib.contextmanager
def moto_server(log: Path, **settings: str) -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 and a free port, its output in `log`; stopped (and waited for)
    on leaving, also when the body raised. `settings`: moto's environment variables."""
    port = free_port()
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**aws_environment(f"http://{LOOPBACK}:{port}"), **settings},
        )
    try:
        endpoint = f"http://{LOOPBACK}:{port}"
        _wait_until_answering(endpoint, server, log)
        yield S3Server(endpoint, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _wait_until_answering(endpoint: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto's server exited {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(endpoint, timeout=2):
                return
        except urllib.error.HTTPError:  # an answer: with auth enforced, moto refuses this request
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"moto's server did not answer within {START_TIMEOUT_S} s:\n{log.read_text()}")


@dataclass(frozen=True)
class Clone:
    """One checkout of the tiny project, with its own local cache."""

    root: Path
    cache: Path

    @property
    def config(self) -> Path:
        return self.root / "tiny.yaml"

    @property
    def lock(self) -> Path:
        return self.root / "tiny.lock"


def make_clone(where: Path, name: str) -> Clone:
    """The tiny project at `where/name/project` (each clone at another path), cache beside it."""
    root = where / name / "project"
    root.mkdir(parents=True)
    (root / "tinynet.py").write_text(TINY_MODEL)
    (root / "tiny.yaml").write_text(TINY_CONFIG)
    return Clone(root, where / name / "cache")


def copy_clone(clone: Clone, where: Path, name: str) -> Clone:
    """Another checkout of `clone`'s project (its build/ and lock left out), with a new empty cache."""
    root = where / name / "project"
    shutil.copytree(clone.root, root, ignore=shutil.ignore_patterns("build", "*.lock"))
    return Clone(root, where / name / "cache")


# `python -m trtbuild`, saying at exit which heavy libraries the process imported (a run fully
# cached, from the remote too, must import none of them).
HEAVY = ("torch", "onnx", "onnxruntime", "tensorrt", "tensorrt_rtx")
HEAVY_SAID = "heavy modules imported:"
WATCHED_TRTBUILD = f"""
import atexit, json, runpy, sys
atexit.register(
    lambda: print({HEAVY_SAID!r}, json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)
)
runpy.run_module("trtbuild", run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class Run:
    completed: subprocess.CompletedProcess[str]
    seconds: float  # wall

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.completed.stderr.splitlines() if line.startswith("WARNING")]

    @property
    def heavy_modules(self) -> list[str]:
        said = [line for line in self.completed.stderr.splitlines() if line.startswith(HEAVY_SAID)]
        assert said, "the process did not say what it imported"
        modules: list[str] = json.loads(said[-1].removeprefix(HEAVY_SAID))
        return modules


def run_clone(clone: Clone, url: str | None, env: dict[str, str], *extra: str, log: str = "info") -> Run:
    """`trtbuild run --json` in the clone's folder with its cache and the remote cache `url` (None:
    no remote), at TRTBUILD_LOG=info, so that a test sees what it says; `log="debug"` shows
    everything, but an engine built at debug level is not published (its bytes are that run's)."""
    environment = {**env, "TRTBUILD_CACHE_DIR": str(clone.cache), "TRTBUILD_LOG": log}
    environment.pop("TRTBUILD_DEBUG", None)
    command = [sys.executable, "-c", WATCHED_TRTBUILD, "run", str(clone.config), "--json"]
    started = time.monotonic()
    completed = subprocess.run(
        [*command, *(("--remote-cache", url) if url else ()), *extra],
        cwd=clone.root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return Run(completed, time.monotonic() - started)
