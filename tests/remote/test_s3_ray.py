"""The README's "Running on a cluster" path with S3: `--executor ray` with an S3 remote cache (moto on
127.0.0.1). The Ray tasks (a local instance's) publish what they build to the bucket, and a second
clone at another path, with an empty cache and the local executor, is served everything from it,
with the same lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.remote.s3 import S3Server, copy_clone, make_clone, run_clone

pytestmark = pytest.mark.slow


def test_ray_tasks_publish_to_s3_and_a_second_clone_is_served_from_it(
    s3_server: S3Server, tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="the Ray executor needs the ray extra")
    remote = s3_server.new_bucket()
    first = make_clone(tmp_path, "on-ray")
    built = run_clone(first, remote.url, remote.environment(), "--executor", "ray")
    assert built.completed.returncode == 0, built.completed.stderr
    assert built.warnings == [], built.warnings
    tasks = json.loads(built.completed.stdout)["tasks"]
    assert {task["state"] for task in tasks} == {"ran"} and all(task["node"] for task in tasks)
    entries = [name for name in remote.objects() if "/ac/" in f"/{name}"]
    assert len(entries) == len(tasks), sorted(remote.objects())  # every task published by its node

    second = copy_clone(first, tmp_path / "elsewhere", "second")
    served = run_clone(second, remote.url, remote.environment())
    assert served.completed.returncode == 0, served.completed.stderr
    document = json.loads(served.completed.stdout)
    assert {task["state"] for task in document["tasks"]} == {"cached"}
    assert any(f"{len(tasks)} result(s) fetched" in notice for notice in document["notices"])
    assert second.lock.read_bytes() == first.lock.read_bytes()
