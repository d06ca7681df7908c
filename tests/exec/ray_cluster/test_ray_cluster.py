"""The Ray executor on a local cluster of three worker nodes (conftest.py): tasks go where their
declared GPU type is, a target no node offers fails before anything runs, and a node killed mid-task
costs a retry elsewhere, not the run. Fixture kinds (kinds.py) stand in for GPU work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_MODEL
from tests.e2e.remote_folder import remote_leftovers, remote_problems
from tests.exec.ray_cluster.conftest import RayTestCluster
from tests.exec.ray_cluster.kinds import HOLD

pytestmark = pytest.mark.slow
DRIVER = Path(__file__).with_name("driver.py")
CONFIG = """\
model: {{name: {name}, source: "tinynet:TinyNet"}}
inputs:
  input: {{shape: [batch, 3, 16, 16], dtype: float32}}
outputs:
  logits: {{shape: [batch, 10]}}
profiles:
  default:
    input: {{min: [1, 3, 16, 16], opt: [2, 3, 16, 16], max: [4, 3, 16, 16]}}
matrix:
  build.targets: [{targets}]
"""


def project(tmp_path: Path, targets: str, name: str = "tiny") -> Path:
    """A config whose model `name` keys its tasks apart from other tests' (the nodes' caches live
    as long as the cluster)."""
    tmp_path.mkdir(exist_ok=True)
    tmp_path.joinpath("tinynet.py").write_text(TINY_MODEL)
    config = tmp_path / "tiny.yaml"
    config.write_text(CONFIG.format(targets=targets, name=name))
    (tmp_path / "shared").mkdir()
    return config


def drive(
    pipeline: str, config: Path, cluster: RayTestCluster | None, *, env: dict[str, str] | None = None
) -> dict[str, Any]:
    root = config.parent
    args = [pipeline, str(config), str(root / "build"), str(root / "driver-cache")]
    if cluster is not None:
        args += [cluster.address, f"file://{root / 'shared'}"]
    completed = subprocess.run(
        [sys.executable, str(DRIVER), *args],
        cwd=root,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def where(document: dict[str, Any], cluster: RayTestCluster) -> dict[str, str]:
    """Task id -> the worker that ran it ("driver" for a task this machine found cached)."""
    found = {}
    for event in document["events"]:
        node = event["node"]
        found[event["id"]] = cluster.name_of(node.rsplit("node ", 1)[1].rstrip(")")) if node else "driver"
    return found


def test_each_task_runs_on_a_node_of_its_gpu_type(tmp_path: Path, ray_cluster: RayTestCluster) -> None:
    config = project(tmp_path, "[SM80], [SM86], [SM89]")
    document = drive("PLACED", config, ray_cluster)
    assert document["exit"] == 0, document
    assert {event["state"] for event in document["events"]} == {"ran"}
    ran_on = where(document, ray_cluster)
    assert ran_on["tiny/SM80/placed"] == "w80"
    assert ran_on["tiny/SM86/placed"] == "w86-89"
    assert ran_on["tiny/SM89/placed"] in ("w89", "w86-89")
    # Artifacts came to this machine through the shared folder, not through Ray.
    placed = json.loads((tmp_path / "build/tiny/SM86/placed.json").read_text())
    assert placed == {"gpu": "SM86", "model": "tiny"}
    assert remote_problems(tmp_path / "shared") == []
    # Each node kept what it ran (and fetched) in its own cache, apart from the driver's.
    assert any(ray_cluster.caches["w80"].rglob("ac/*/*")), "w80 kept nothing"


def test_the_driver_fetches_only_the_cells_artifacts(tmp_path: Path, ray_cluster: RayTestCluster) -> None:
    """The seed is no cell's artifact: its result stays in the remote cache. Writing the report read
    every result of the run from the store, and so downloaded each into the driver's cache."""
    config = project(tmp_path, "[SM89]", name="shown")
    document = drive("SEED_NOT_SHOWN", config, ray_cluster)
    assert document["exit"] == 0, document
    assert {event["state"] for event in document["events"]} == {"ran"}
    entries = sorted(path.name for path in (tmp_path / "driver-cache").rglob("ac/*/*"))
    placed = next(event["key"] for event in document["events"] if event["kind"] == "placed")
    assert entries == [f"{placed}.json"], entries
    report = json.loads((tmp_path / "build/shown/report.json").read_text())
    assert {task["state"] for cell in report["cells"] for task in cell["tasks"]} == {"built"}


def test_an_input_damaged_in_the_remote_is_published_again_from_the_drivers_cache(
    tmp_path: Path, ray_cluster: RayTestCluster
) -> None:
    """The driver holds an upstream result (cached locally, checked), whose blob in the remote cache
    is damaged and which no node holds: the node cannot get its input. No run would ever rebuild
    the upstream (it is cached here), so every run failed the same way; the driver now publishes
    its copy again and the task is retried once."""
    first = project(tmp_path, "[SM80]", name="mended")
    assert drive("PLACED", first, ray_cluster)["exit"] == 0
    seed = json.loads(first.with_suffix(".lock").read_text())["tasks"]["mended/seed"]
    blob = tmp_path / "shared" / "cas" / seed["outputs"]["seed.json"]["hash"].split(":")[1][:2]
    damaged = blob / seed["outputs"]["seed.json"]["hash"].split(":")[1]
    damaged.write_bytes(b"X" + damaged.read_bytes()[1:])  # same size, other bytes
    for cache in ray_cluster.caches.values():  # no node holds the seed any more
        shutil.rmtree(cache, ignore_errors=True)

    first.write_text(first.read_text().replace("[[SM80]]", "[[SM89]]"))
    document = drive("PLACED", first, ray_cluster)
    assert document["exit"] == 0, document
    assert any("mended/seed's result was published again" in notice for notice in document["notices"])
    assert remote_problems(tmp_path / "shared") == []


def test_a_target_no_node_offers_fails_before_anything_runs(
    tmp_path: Path, ray_cluster: RayTestCluster
) -> None:
    config = project(tmp_path, "[SM89], [SM120]")
    document = drive("PLACED", config, ray_cluster)
    assert document["exit"] == 2, document
    message = document["error"]
    assert "tiny/SM120" in message and "SM120" in message and "trtbuild-gpu-sm120" in message
    # What the cluster has, node by node, so the user can see what is missing.
    assert "trtbuild-gpu-sm89 1" in message and "trtbuild-gpu-sm80 1" in message
    assert "tiny/SM89" not in message.split("which nothing")[0]
    # Nothing ran: not the SM89 cell, not the shared task, nothing published.
    assert not (tmp_path / "build").exists() or not any((tmp_path / "build").rglob("*.json"))
    assert not any((tmp_path / "shared").rglob("ac/*/*"))


def outcome(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(task, state, the reason of a skip) per event."""
    return [(e["id"], e["state"], e["reason"] if e["state"] == "skipped" else "") for e in document["events"]]


def test_keep_going_on_a_node_failure_is_a_local_runs(tmp_path: Path, ray_cluster: RayTestCluster) -> None:
    """--keep-going: what runs, what is skipped and why, and the exit status are a local run's."""
    flag = {"TRTBUILD_TEST_KEEP_GOING": "1"}
    on_ray = drive("FRAGILE", project(tmp_path / "ray", "[SM86], [SM89]", name="kept"), ray_cluster, env=flag)
    local = drive("FRAGILE", project(tmp_path / "local", "[SM86], [SM89]", name="kept"), None, env=flag)
    assert on_ray["exit"] == local["exit"] == 1
    assert outcome(on_ray) == outcome(local)
    failed = [e for e in on_ray["events"] if e["state"] == "failed"]
    assert [e["id"] for e in failed] == ["kept/SM86/fragile"]
    assert "this fixture task fails for SM86" in failed[0]["reason"] and failed[0]["details"] == ["by design"]
    assert ("kept/SM86/after", "skipped", "kept/SM86/fragile failed") in outcome(on_ray)
    assert ("kept/SM89/after", "ran", "") in outcome(on_ray)


def test_without_keep_going_nothing_starts_after_a_node_failure(
    tmp_path: Path, ray_cluster: RayTestCluster
) -> None:
    """Which tasks had started when the failure came back depends on timing (as at local -j 2);
    what must hold: the failure's dependent is skipped naming it, nothing else fails, and every
    task that did not run says it was not started after the failure."""
    on_ray = drive("FRAGILE", project(tmp_path, "[SM86], [SM89]", name="stopped"), ray_cluster)
    assert on_ray["exit"] == 1
    stopped = "not started after stopped/SM86/fragile failed (--keep-going runs what does not depend on it)"
    for task, state, reason in outcome(on_ray):
        if task == "stopped/SM86/fragile":
            assert state == "failed"
        elif task == "stopped/SM86/after":
            assert (state, reason) == ("skipped", "stopped/SM86/fragile failed")
        else:
            assert state == "ran" or (state, reason) == ("skipped", stopped), (task, state, reason)


def test_a_node_killed_mid_task_costs_a_retry_elsewhere(tmp_path: Path, ray_cluster: RayTestCluster) -> None:
    config = project(tmp_path, "[SM89]", name="held")
    hold = tmp_path / HOLD
    hold.mkdir()
    root = config.parent
    driver = subprocess.Popen(
        [
            sys.executable,
            str(DRIVER),
            "SEED_ONLY",
            str(config),
            str(root / "build"),
            str(root / "driver-cache"),
            ray_cluster.address,
            f"file://{root / 'shared'}",
        ],
        cwd=root,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = _wait_for(hold / "started-1", driver)
        victim = ray_cluster.name_of(first)
        ray_cluster.cluster.remove_node(ray_cluster.nodes.pop(victim), allow_graceful=False)
        second = _wait_for(hold / "started-2", driver)
        (hold / "release").touch()
        out, err = driver.communicate(timeout=120)
    finally:
        driver.kill()
    assert driver.returncode == 0, err
    document = json.loads(out.splitlines()[-1])
    assert document["exit"] == 0, document
    assert ray_cluster.name_of(second) != victim
    assert where(document, ray_cluster)["held/seed"] == ray_cluster.name_of(second)
    # Nothing the dead node started is in the shared cache: every entry and blob checks out.
    assert remote_problems(root / "shared") == []
    assert remote_leftovers(root / "shared") == []
    # The run's lock is the one a local run of the same pipeline writes.
    ray_lock = config.with_suffix(".lock").read_text()
    local = tmp_path / "local"
    local.mkdir()
    local_config = project(local, "[SM89]", name="held")
    assert drive("SEED_ONLY", local_config, None)["exit"] == 0
    assert local_config.with_suffix(".lock").read_text() == ray_lock


def _wait_for(path: Path, driver: subprocess.Popen[str], seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while not path.exists() or not path.read_text():
        assert driver.poll() is None, f"the driver ended before {path.name}: {driver.communicate()}"
        assert time.monotonic() < deadline, f"{path.name} did not appear"
        time.sleep(0.05)
    return path.read_text()


def test_a_task_whose_only_node_died_fails_instead_of_waiting_forever(
    tmp_path: Path, ray_cluster: RayTestCluster
) -> None:
    """The only node of a GPU type leaves while the task's upstream runs: Ray kept the task pending
    for a node that never comes, and the run waited forever. Now it fails, naming what it needs."""
    config = project(tmp_path, "[SM75]", name="orphaned")
    hold = tmp_path / HOLD
    hold.mkdir()
    only = ray_cluster.cluster.add_node(
        node_ip_address="127.0.0.1",
        object_store_memory=80 << 20,
        num_cpus=1,
        num_gpus=1,
        resources={"trtbuild-gpu-sm75": 1.0},
        env_vars={"TRTBUILD_CACHE_DIR": str(tmp_path / "sm75-cache")},
    )
    ray_cluster.cluster.wait_for_nodes()
    root = config.parent
    args = ["PLACED", str(config), str(root / "build"), str(root / "driver-cache")]
    driver = subprocess.Popen(
        [sys.executable, str(DRIVER), *args, ray_cluster.address, f"file://{root / 'shared'}"],
        cwd=root,
        env={**os.environ, "TRTBUILD_TEST_NODES_GONE_S": "4"},  # 20 s in use: the behaviour, sooner
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(hold / "started-1", driver)
        ray_cluster.cluster.remove_node(only, allow_graceful=False)
        (hold / "release").touch()
        out, err = driver.communicate(timeout=150)
    finally:
        driver.kill()
    assert driver.returncode == 0, err
    document = json.loads(out.splitlines()[-1])
    assert document["exit"] == 1, document
    placed = next(event for event in document["events"] if event["id"] == "orphaned/SM75/placed")
    assert placed["state"] == "failed", placed
    assert "no live node can take it any more" in placed["reason"], placed
    assert "trtbuild-gpu-sm75" in placed["reason"], placed
