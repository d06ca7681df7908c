"""Done-when item 2 of issue 14: a `file://` remote shared by two trtbuild processes running at once.

Two clones of the tiny project at different paths, each with its own local cache, are started
together against one empty shared folder (the real CLI, `--json`): both succeed with equal locks,
the folder is consistent afterwards (tests/e2e/remote_folder.py: remote_problems) with nothing left
in its tmp/, and a third clone with an empty local cache is served entirely from it (hashes checked
on download; its outputs hash to what the lock names), importing neither torch, onnx nor TensorRT."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TINY_CONFIG
from tests.e2e.remote_folder import (
    clone,
    command,
    environment,
    lock_of,
    remote_entries,
    remote_leftovers,
    remote_problems,
    run,
    run_watching,
    start,
    states,
)
from trtbuild.store.hashing import digest_file

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("jobs", ["1", "2"], ids=["j1", "j2"])
def test_two_processes_share_a_folder_and_a_third_is_served_from_it(tmp_path: Path, jobs: str) -> None:
    remote = tmp_path / "shared"
    remote.mkdir()
    first, second = clone(tmp_path, "first"), clone(tmp_path / "elsewhere", "second")
    # Both at the same -j: a -j 2 run's reference outputs differ from a -j 1 run's in their last bits
    # (validation.json's float environment), so their validate keys, and locks, would differ.
    running = [start(project, remote, "-j", jobs) for project in (first, second)]
    outputs = [process.communicate(timeout=600) for process in running]
    for process, (_, stderr) in zip(running, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr and "warning" not in stderr.lower(), stderr
    assert lock_of(first) == lock_of(second)
    assert remote_problems(remote) == []
    assert remote_leftovers(remote) == []
    keys = {entry["key"] for entry in lock_of(first)["tasks"].values()}  # type: ignore[attr-defined]
    assert remote_entries(remote) == keys  # every task published, and nothing else

    third = clone(tmp_path / "third-place", "third")
    served, loaded = run_watching(third, remote, ("torch", "onnx", "tensorrt_rtx", "fsspec"))
    assert served.returncode == 0, served.stderr
    assert set(states(served).values()) == {"cached"}, served.stdout
    notices = json.loads(served.stdout)["notices"]
    assert any(f"{len(keys)} result(s) fetched" in notice for notice in notices), notices
    assert loaded == ["fsspec"]  # served without torch, onnx or TensorRT, as a local no-op
    assert lock_of(third) == lock_of(first)
    recorded = {o["hash"] for e in lock_of(third)["tasks"].values() for o in e["outputs"].values()}  # type: ignore[attr-defined]
    outputs = list((third.out / "tiny" / "fp32").iterdir())
    assert len(outputs) == 5 and {digest_file(path) for path in outputs} <= recorded


def test_run_only_one_cell_fetches_that_cell_and_reports_the_others_as_not_fetched(tmp_path: Path) -> None:
    """Before: the report of a `run --only` planned every cell again with fetch=True, so the cells
    left out were downloaded too (all 10 results instead of fp32's 7)."""
    remote = tmp_path / "shared"
    remote.mkdir()
    config = TINY_CONFIG.replace("build:\n  targets: [SM89]\n", "matrix:\n  precision: [fp32, fp16]\n")
    config += "build: {targets: [SM89]}\n"
    published = run(clone(tmp_path, "builder", config), remote)
    assert published.returncode == 0, published.stderr

    user = clone(tmp_path, "user", config)
    completed = run(user, remote, "--only", "fp32")
    assert completed.returncode == 0 and "Traceback" not in completed.stderr, completed.stderr
    document = json.loads(completed.stdout)
    assert set(states(completed).values()) == {"cached"}
    fetched = f"{len(document['tasks'])} result(s) fetched"
    assert any(notice.endswith(fetched) or f"{fetched} (" in notice for notice in document["notices"])
    report = json.loads((user.out / "tiny" / "report.json").read_text())
    cells = {cell["cell"]: cell for cell in report["cells"]}
    assert cells["fp32"]["status"] == "built" and cells["fp32"]["verdict"] == "passed"
    assert cells["fp16"]["status"] == "not fetched" and cells["fp16"]["verdict"] == "not validated"
    assert {t["state"] for t in cells["fp16"]["tasks"] if "fp16" in t["id"]} == {"not fetched"}
    assert "in the remote cache, not fetched" in (user.out / "tiny" / "report.md").read_text()


def test_an_engine_built_with_the_debug_log_is_not_published(tmp_path: Path) -> None:
    """Before: a TRTBUILD_LOG=debug writer published its engine (other bytes than a normal build's,
    marked not byte-reproducible) under the shared key, and every consumer was handed it."""
    remote = tmp_path / "shared"
    remote.mkdir()
    writer = clone(tmp_path, "writer")
    completed = subprocess.run(
        command(writer, remote),
        cwd=writer.root,
        env={**environment(writer), "TRTBUILD_LOG": "debug"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    keys = {task: entry["key"] for task, entry in lock_of(writer)["tasks"].items()}  # type: ignore[attr-defined]
    assert keys["tiny/fp32/build"] not in remote_entries(remote)
    assert keys["tiny/export"] in remote_entries(remote)  # the rest is published as before
    notices = json.loads(completed.stdout)["notices"]
    assert any("1 result(s) not published: built with TRTBUILD_LOG=debug" in n for n in notices), notices
