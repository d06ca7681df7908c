"""Defect 7 of issue 13: killed and interrupted runs leave nothing behind.

On 7722d02, "35 of 71 kills left `cache/tmp/<kind>-*` (3.4 MB each for builds), not cleaned by later
runs (gc waits 24 h); the engine-builder child outlived its parent by up to 4 s; SIGINT took up to
1.8 s and 3 of 18 died of the signal instead of exiting 130". Real processes, real signals, a tiny
real model: a task's start is seen as its work dir appearing in the cache's tmp/."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, Project, session_processes

pytestmark = pytest.mark.slow


def _start_run(project: Project) -> subprocess.Popen[str]:
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(project.cache), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "trtbuild", "run", str(project.config), "--out", str(project.out)]
    return subprocess.Popen(
        command,
        cwd=project.root,
        env=env,
        start_new_session=True,  # its session holds every process it starts: what is left is seen
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(found: object, process: subprocess.Popen[str], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not found():  # type: ignore[operator]
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()}"
        assert time.monotonic() < deadline, f"{what} not seen"
        time.sleep(0.005)


def _gone(session: int, timeout: float) -> dict[int, tuple[str, int, str]]:
    deadline = time.monotonic() + timeout
    while (left := session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def _temp_files(project: Project) -> list[Path]:
    tmp = project.cache / "tmp"
    leftovers = list(tmp.iterdir()) if tmp.exists() else []
    return leftovers + [p for p in project.root.rglob("*.tmp")]


def test_sigint_during_a_build_exits_130_at_once_and_leaves_nothing(tiny_project: Project) -> None:
    run = _start_run(tiny_project)
    _wait_for(lambda: any((tiny_project.cache / "tmp").glob("build-*")), run, "the build's start")
    signalled = time.monotonic()
    run.send_signal(signal.SIGINT)  # trtbuild's process alone (`kill -INT`): the harder case
    _, stderr = run.communicate(timeout=60)
    wall = time.monotonic() - signalled
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert wall < 0.5, f"{wall:.2f} s from SIGINT to exit"
    assert _gone(run.pid, timeout=0.5) == {}, "workers or the builder outlived the run"
    assert _temp_files(tiny_project) == []
    rerun = tiny_project.run_json()
    assert {task["state"] for task in rerun["tasks"]} <= {"cached", "ran"}


def test_the_builder_dies_with_its_worker(tiny_project: Project) -> None:
    run = _start_run(tiny_project)
    builders: list[tuple[int, int]] = []

    def builder_started() -> bool:
        builders[:] = [
            (pid, parent)
            for pid, (_, parent, cmd) in session_processes(run.pid).items()
            if "build-request.json" in cmd
        ]
        return bool(builders)

    _wait_for(builder_started, run, "the engine builder")
    (builder, worker), *_ = builders
    # Stopped, the builder cannot finish on its own: only the signal that ties it to its worker ends it.
    os.kill(builder, signal.SIGSTOP)
    try:
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while builder in session_processes(run.pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert builder not in session_processes(run.pid), "the builder outlived its worker"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(builder, signal.SIGKILL)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr  # the build failed: its worker was killed


HOLDER = """
import os, signal, sys, time
from pathlib import Path
from trtbuild.store import Store
store = Store(Path(sys.argv[1]))
with store.temp_dir(sys.argv[2]) as work:
    (work / "half-written").write_bytes(b"x" * 1000)
    print(work, flush=True)
    if sys.argv[2] == "dead-":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)
"""


def _holder(project: Project, prefix: str) -> tuple[subprocess.Popen[str], Path]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(project.cache), prefix],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_the_next_run_removes_dead_processes_work_dirs_and_keeps_live_ones(tiny_project: Project) -> None:
    dead, dead_dir = _holder(tiny_project, "dead-")
    assert dead.wait(timeout=60) == -signal.SIGKILL and dead_dir.is_dir()
    live, live_dir = _holder(tiny_project, "live-")
    try:
        # A temp file a killed run was writing a blob into (its name as files.temp_path makes them).
        loose = tiny_project.cache / "tmp" / ".blob.999999.0123456789ab.tmp"
        loose.write_bytes(b"half a blob")
        tiny_project.run_json()
        assert not dead_dir.exists(), "a dead process's work dir was left"
        assert live_dir.is_dir() and (live_dir / "half-written").exists(), "a live run's work dir was touched"
        assert loose.exists(), "a loose temp file may be a live run's: kept while another run holds the cache"
    finally:
        live.kill()
        live.wait()
    tiny_project.run_json()  # alone now: everything in tmp/ is a leftover
    assert _temp_files(tiny_project) == []


def _ray_session_processes(driver: int) -> list[str]:
    """Processes of the Ray instance a run started (its session folder is named after the driver's pid)."""
    marker = f"_{driver}/sockets"
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            command = cmdline.read_bytes().replace(b"\0", b" ").decode()
            if marker in command:
                found.append(command[:120])
    return found


def test_sigint_on_the_ray_executor_exits_130_and_stops_its_ray_instance(tiny_project: Project) -> None:
    pytest.importorskip("ray", reason="the Ray executor needs the ray extra")
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(tiny_project.cache), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "trtbuild", "run", str(tiny_project.config), "--executor", "ray"]
    run = subprocess.Popen(
        command, cwd=tiny_project.root, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    # With a local instance the node shares this cache: the build's work dir appears in its tmp/.
    _wait_for(lambda: any((tiny_project.cache / "tmp").glob("build-*")), run, "the build's start on the node")
    signalled = time.monotonic()
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert time.monotonic() - signalled < 10, "the run waited for its tasks"
    deadline = time.monotonic() + 15
    while (left := _ray_session_processes(run.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], "the run's Ray instance outlived it"
    rerun = tiny_project.run_json()
    assert {task["state"] for task in rerun["tasks"]} <= {"cached", "ran"}
