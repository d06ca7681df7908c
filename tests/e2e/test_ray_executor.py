"""Done-when item 1 of issue 15: `trtbuild run CONFIG --executor ray` on a small model exits 0 with
the same lock as a local run.

The real CLI on the tiny model, with a Ray instance the run starts on this machine (loopback only)
and stops. The local run it is compared with is `-j 2`: a Ray task has one CPU, so its libraries
run one intra-op thread, as each of `-j 2`'s workers on this 2-CPU machine does; `-j 1`'s worker
keeps the libraries' default thread count, and validation.json records that float environment
(trtbuild/tasks/float_environment.py), so its validate outputs, and lock, differ by design."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.e2e.remote_folder import clone, environment, lock_of
from trtbuild.store.hashing import digest_file

pytestmark = pytest.mark.slow


def run(project_root: Path, cache: Path, *args: str, watched: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """`trtbuild run tiny.yaml --json ARGS` in a new interpreter; its document and which of the
    `watched` modules it had imported by the end."""
    arguments = ["run", "tiny.yaml", "--out", "build", "--json", *args]
    probe = (
        "import json, sys\nfrom trtbuild.cli import main\n"
        f"status = main({arguments!r})\n"
        f"print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)), file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    env = {**environment_for(cache), "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=project_root, env=env, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    loaded = json.loads(completed.stderr.strip().splitlines()[-1])
    return json.loads(completed.stdout), loaded  # stdout is the one JSON document: Ray printed nothing there


def environment_for(cache: Path) -> dict[str, str]:
    from tests.conftest import Project

    return environment(Project(root=cache.parent, config=cache.parent / "tiny.yaml", cache=cache, out=cache))


def test_executor_ray_builds_the_tiny_model_with_a_local_runs_lock(tmp_path: Path) -> None:
    on_ray = clone(tmp_path, "on-ray")
    document, _ = run(on_ray.root, on_ray.cache, "--executor", "ray")
    tasks = document["tasks"]
    assert {task["state"] for task in tasks} == {"ran"}, tasks
    assert all(task["node"] for task in tasks), "every task ran on a Ray node and says which"
    ray_lock = lock_of(on_ray)

    local = clone(tmp_path / "elsewhere", "local")
    run(local.root, local.cache, "-j", "2")
    assert lock_of(local) == ray_lock
    # The cell's artifacts, fetched from the nodes' results, are the local run's bytes.
    cell = on_ray.out / "tiny" / "fp32"
    names = sorted(path.name for path in cell.iterdir())
    assert names == ["engine.json", "model.engine", "model.onnx", "precision.json", "validation.json"], names
    for name in names:
        assert digest_file(cell / name) == digest_file(local.out / "tiny" / "fp32" / name), name

    # Again: everything is cached, and no Ray instance is started (nor torch, onnx, TensorRT loaded).
    again, loaded = run(
        on_ray.root, on_ray.cache, "--executor", "ray", watched=("ray", "torch", "onnx", "tensorrt_rtx")
    )
    assert {task["state"] for task in again["tasks"]} == {"cached"}
    assert loaded == []
    assert "every task was cached: no Ray instance was started" in again["notices"]
