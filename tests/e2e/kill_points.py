"""Kill -9 at seeded random moments of a cold run of the tiny model, then run again and check.

Used by tests/e2e/test_kill_points.py (a CI subset: one point per phase, `phase_points`) and
bench/kill_points.py (>= 50 points over the whole run, `kill_points`). Real timing, no
fault-injection hooks: one undisturbed cold run measures how long a run takes and when each task's
action entry, the report and the lock appeared, and each point kills trtbuild's process (`kill -9
PID`, its workers and builder left to notice) at a time drawn from a seeded RNG, on an empty cache.
Then, after its orphans are gone, the next run must:
exit 0; leave every blob hashing to its name and every action entry readable, its blobs present;
put outputs in build/ that hash to what the lock names, with the same keys as the undisturbed run;
and leave nothing in the cache's tmp/ nor any temp file beside the outputs or the lock.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO, Project, session_processes

STAGES = ("export", "simplify", "probe", "reference", "precision", "build", "validate")


@dataclass
class Point:
    at: float  # seconds after the start (with `after`: how long that took to appear)
    # Kill as soon as this appears instead ("export": the task's action entry; "report.json"; "lock").
    after: str = ""
    aimed: str = ""  # the phase this point is meant to land in (phase_points)
    # The first stage not in the cache when killed ("export" includes start-up), else how far the
    # run's end got: "outputs/reports", "lock writing", "after the lock" (GC root, exit).
    landed: str = ""
    problems: list[str] = field(default_factory=list)


def _env(project: Project) -> dict[str, str]:
    return {**os.environ, "TRTBUILD_CACHE_DIR": str(project.cache), "PYTHONPATH": str(REPO)}


def _command(project: Project) -> list[str]:
    return [sys.executable, "-m", "trtbuild", "run", str(project.config), "--out", str(project.out)]


def _fresh(project: Project) -> None:
    for path in (project.cache, project.out, project.config.with_suffix(".lock")):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


@dataclass
class Reference:
    """The undisturbed cold run: its wall time, its lock's key per task, and when (seconds after its
    start) each task's action entry, report.json and the lock first appeared."""

    seconds: float
    keys: dict[str, str]
    appeared: dict[str, float]


def reference_run(project: Project) -> Reference:
    _fresh(project)
    started = time.monotonic()
    run = subprocess.Popen(
        _command(project),
        cwd=project.root,
        env=_env(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen: dict[str, float] = {}
    while run.poll() is None:
        _note_appeared(project, seen, time.monotonic() - started)
        time.sleep(0.01)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr.read() if run.stderr else run.returncode
    keys = _lock_keys(project)
    tasks = {key: task for task, key in keys.items()}
    return Reference(seconds, keys, {tasks.get(name, name): at for name, at in seen.items()})


def _note_appeared(project: Project, seen: dict[str, float], now: float) -> None:
    for entry in project.cache.glob("ac/*/*.json"):
        seen.setdefault(entry.stem, now)
    for name, path in (("report.json", project.out / "tiny" / "report.json"), ("lock", _lock(project))):
        if path.exists():
            seen.setdefault(name, now)


def _lock(project: Project) -> Path:
    return project.config.with_suffix(".lock")


def _lock_keys(project: Project) -> dict[str, str]:
    lock = json.loads(_lock(project).read_text())
    return {task: entry["key"] for task, entry in lock["tasks"].items()}


def kill_at(project: Project, point: Point, keys: dict[str, str]) -> None:
    _fresh(project)
    run = subprocess.Popen(
        _command(project),
        cwd=project.root,
        env=_env(project),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if point.after:
        point.at = _wait_for(project, point, keys, run)
    else:
        time.sleep(point.at)
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 5
    while session_processes(run.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if session_processes(run.pid):
        point.problems.append("a worker or builder outlived the killed run by 5 s")
    point.landed = _landed(project, keys)


def _wait_for(project: Project, point: Point, keys: dict[str, str], run: subprocess.Popen[bytes]) -> float:
    """Seconds until `point.after` appeared (polled every 5 ms); a problem if the run ended first."""
    started, seen = time.monotonic(), dict[str, float]()
    task = {key: task for task, key in keys.items()}
    while run.poll() is None:
        _note_appeared(project, seen, 0.0)
        if any(name == point.after or task.get(name, "").endswith(f"/{point.after}") for name in seen):
            break
        time.sleep(0.005)
    else:
        point.problems.append(f"the run ended before {point.after} appeared: nothing was killed")
    return time.monotonic() - started


def _landed(project: Project, keys: dict[str, str]) -> str:
    cached = {path.stem for path in (project.cache / "ac").glob("*/*.json")}
    missing = [task for task, key in keys.items() if key not in cached]
    for stage in STAGES:
        if any(task.endswith(f"/{stage}") for task in missing):
            return stage
    if project.config.with_suffix(".lock").exists():
        return "after the lock"
    return "lock writing" if (project.out / "tiny" / "report.json").exists() else "outputs/reports"


def check_after_rerun(project: Project, keys: dict[str, str]) -> list[str]:
    completed = subprocess.run(
        _command(project), cwd=project.root, env=_env(project), capture_output=True, text=True
    )
    if completed.returncode != 0:
        return [f"the next run exited {completed.returncode}: {completed.stderr[-400:]}"]
    problems = _store_problems(project)
    if _lock_keys(project) != keys:
        problems.append("the lock's keys differ from the undisturbed run's")
    problems += _output_problems(project)
    problems += [f"left behind: {path}" for path in _leftovers(project)]
    return problems


def _store_problems(project: Project) -> list[str]:
    from trtbuild.store import Store
    from trtbuild.store.hashing import digest_file

    store = Store(project.cache)
    problems = []
    for blob in (project.cache / "cas").glob("*/*"):
        if digest_file(blob) != f"blake3:{blob.name}":
            problems.append(f"corrupt blob {blob}")
    for key in store.iter_action_keys():
        result, _ = store.read_action_entry(key)
        if result is None:
            problems.append(f"unreadable action entry {key}")
            continue
        for digest in result.outputs.values():
            if not store.blob_path(digest.hash).is_file():
                problems.append(f"action entry {key} names a missing blob {digest.hash}")
    return problems


def _output_problems(project: Project) -> list[str]:
    """Each file in build/<model>/<cell>/ must hash to what the lock records for it."""
    from trtbuild.store.hashing import digest_file

    lock = json.loads(project.config.with_suffix(".lock").read_text())
    recorded = {o["hash"] for entry in lock["tasks"].values() for o in entry["outputs"].values()}
    cells = [folder for folder in (project.out / "tiny").iterdir() if folder.is_dir()]
    files = [path for folder in cells for path in folder.iterdir()]
    if len(files) < 5:
        return [f"only {len(files)} outputs in build/"]
    return [f"{path} is not an output the lock names" for path in files if digest_file(path) not in recorded]


def _leftovers(project: Project) -> list[Path]:
    tmp = project.cache / "tmp"
    in_tmp = list(tmp.iterdir()) if tmp.is_dir() else []
    return in_tmp + [path for path in project.root.rglob("*.tmp")] + list(project.cache.rglob("*.tmp"))


def kill_points(project: Project, count: int, seed: int) -> tuple[float, list[Point]]:
    """`count` kill points from `seed` over the whole run, a fifth of them over its last tenth (where
    the reports and the lock are written); the undisturbed run's wall time and every point's outcome."""
    reference = reference_run(project)
    rng = random.Random(seed)
    points = [
        Point(
            rng.uniform(0.9, 1.0) * reference.seconds
            if index % 5 == 4
            else rng.uniform(0.0, reference.seconds)
        )
        for index in range(count)
    ]
    return reference.seconds, _kill_each(project, points, reference.keys)


# The CI subset: one kill point per phase, each named by where it lands (`_landed`: the first stage
# not in the cache, "export" including start-up, or how far the run's end got) and how it gets
# there. Points at uniform times land mostly in two phases: start-up and export (torch's import)
# and outputs/reports take ~80% of a run (seed 13's ten points: 4 and 6; none in a stage after
# export, nor after the lock). So all but the first kill as soon as something appears (polled every
# 5 ms): just after a publish, mid-pipeline (simplify); while the TensorRT-RTX builder runs (build);
# while outputs are linked into build/ and the reports written; after the lock (GC roots, exit).
# Probe, reference, precision and validate are tasks like simplify (run in the kept worker, then
# published), and bench/kill_points.py's 50 points land in them too. "Lock writing" (report.json
# written, the lock not yet) lasts a few milliseconds: neither the old 10 points nor the bench's 50
# landed there, and a point on report.json's appearance lands after the lock.
PHASE_POINTS = (
    ("export", ""),  # a seeded time in the first half of the time before export's entry appeared
    ("simplify", "export"),
    ("build", "precision"),
    ("outputs/reports", "validate"),
    ("after the lock", "lock"),
)


def phase_points(project: Project, seed: int) -> tuple[Reference, list[Point]]:
    """The PHASE_POINTS of a cold run; the undisturbed run and every point's outcome."""
    reference = reference_run(project)
    exported = reference.appeared[next(task for task in reference.keys if task.endswith("/export"))]
    rng = random.Random(seed)
    points = [
        Point(rng.uniform(0.1, 0.5) * exported if not after else 0.0, after=after, aimed=phase)
        for phase, after in PHASE_POINTS
    ]
    return reference, _kill_each(project, points, reference.keys)


def _kill_each(project: Project, points: list[Point], keys: dict[str, str]) -> list[Point]:
    for point in points:
        kill_at(project, point, keys)
        point.problems += check_after_rerun(project, keys)
    return points
