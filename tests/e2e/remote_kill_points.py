"""Kill -9 a trtbuild that is publishing to a shared-folder remote, then check what readers see.

Used by tests/e2e/test_remote_kill_points.py (a CI subset) and bench/remote_kill_points.py (more
points, WideNet's 8 MB blobs). Real timing, no fault-injection hooks. Each point starts a cold run
of a fresh clone (empty local cache) against an empty remote folder and kills trtbuild's process
(`kill -9`, its workers and builder left to notice) as soon as its k-th action entry is on the
remote (so it lands in the next task's work or uploads), or as soon as its k-th upload has appeared
in the remote's tmp/ (polled every half millisecond: with 8 MB blobs the kill lands during or just
after that upload; small files are often missed, so "k-th seen"), or after a seeded random delay
within an undisturbed run's duration. All at -j 1: a -j 2 run's reference outputs differ in their
last bits (validation.json's float environment), so downstream keys would not match the undisturbed
run's (tests/e2e/test_remote_folder.py runs -j 2 writers at once). Then:

- right after the kill, no entry under ac/ may fail its digest check or name a blob that is
  missing, of another size or not hashing to its name (remote_folder.py: remote_problems);
- every action entry the killed writer recorded in its local cache is on the remote too (that
  clone's next run finds them locally, so it would never publish them);
- a run of another clone with an empty local cache against that remote must exit 0 with the
  undisturbed run's keys, and leave the remote consistent too.

A killed writer's temp files in tmp/ are counted, not a problem: no reader looks there.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import session_processes
from tests.e2e.remote_folder import (
    clone,
    command,
    environment,
    lock_of,
    remote_entries,
    remote_leftovers,
    remote_problems,
    run,
)

POLL_S = 0.0005
Trigger = Callable[[Path, "subprocess.Popen[str]"], None]  # waits for the moment to kill


@dataclass
class Kill:
    how: str  # "entry k", "upload k" or "at 1.23 s"
    published: int = 0  # entries on the remote when killed
    leftovers: int = 0  # temp files the killed writer left in the remote's tmp/
    problems: list[str] = field(default_factory=list)


def _keys(lock: dict[str, object]) -> dict[str, str]:
    tasks: dict[str, dict[str, str]] = lock["tasks"]  # type: ignore[assignment]
    return {task: entry["key"] for task, entry in tasks.items()}


def reference_run(base: Path, config: str) -> tuple[float, dict[str, str]]:
    """An undisturbed cold run publishing to an empty remote: its wall time and its keys."""
    remote = base / "reference" / "shared"
    remote.mkdir(parents=True)
    project = clone(base / "reference", "writer", config)
    started = time.monotonic()
    completed = run(project, remote)
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        raise RuntimeError(f"the undisturbed run exited {completed.returncode}: {completed.stderr}")
    keys = _keys(lock_of(project))
    shutil.rmtree(base / "reference")
    return seconds, keys


def after_upload(count: int) -> Trigger:
    """Wait until the `count`-th distinct temp file has appeared in the remote's tmp/."""

    def wait(remote: Path, process: subprocess.Popen[str]) -> None:
        seen: set[str] = set()
        while process.poll() is None and len(seen) < count:
            with contextlib.suppress(FileNotFoundError):  # not made before the first upload
                seen.update(os.listdir(remote / "tmp"))
            time.sleep(POLL_S)

    return wait


def after_entries(count: int) -> Trigger:
    """Wait until `count` action entries are on the remote."""

    def wait(remote: Path, process: subprocess.Popen[str]) -> None:
        while process.poll() is None and len(remote_entries(remote)) < count:
            time.sleep(POLL_S)

    return wait


def after_delay(seconds: float) -> Trigger:
    return lambda remote, process: time.sleep(seconds)


def kill_publisher(base: Path, config: str, keys: dict[str, str], trigger: Trigger, kill: Kill) -> None:
    remote = base / "shared"
    remote.mkdir(parents=True)
    writer = clone(base, "writer", config)
    process = subprocess.Popen(
        command(writer, remote),
        cwd=writer.root,
        env=environment(writer),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    trigger(remote, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 5
    while session_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    kill.published, kill.leftovers = len(remote_entries(remote)), len(remote_leftovers(remote))
    kill.problems += [f"after the kill: {problem}" for problem in remote_problems(remote)]
    unpublished = {entry.stem for entry in writer.cache.glob("ac/*/*.json")} - remote_entries(remote)
    if unpublished:  # that clone's next run finds them locally, so it would never publish them
        kill.problems.append(f"{len(unpublished)} entries recorded locally but not on the remote")
    reader = clone(base, "reader", config)
    completed = run(reader, remote)
    if completed.returncode != 0:
        kill.problems.append(f"the next clone's run exited {completed.returncode}: {completed.stderr[-400:]}")
    elif _keys(lock_of(reader)) != keys:
        kill.problems.append("the next clone's lock has other keys than the undisturbed run's")
    kill.problems += [f"after the next run: {problem}" for problem in remote_problems(remote)]
    shutil.rmtree(base)


def remote_kill_points(
    base: Path, config: str, triggers: list[tuple[str, Trigger]], random_points: int, seed: int
) -> tuple[float, list[Kill]]:
    """A kill at each of `triggers`, then at `random_points` seeded random delays within the
    undisturbed run's wall time; that time and every kill's outcome."""
    seconds, keys = reference_run(base, config)
    rng = random.Random(seed)
    points = list(triggers)
    for _ in range(random_points):
        delay = rng.uniform(0.0, seconds)
        points.append((f"at {delay:.2f} s", after_delay(delay)))
    kills = []
    for index, (how, trigger) in enumerate(points):
        kill = Kill(how)
        kill_publisher(base / f"point-{index}", config, keys, trigger, kill)
        kills.append(kill)
    return seconds, kills
