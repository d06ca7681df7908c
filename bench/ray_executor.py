"""Benchmark: the Ray executor's overhead per task, side by side with the local executor (issue 15).

A 12-cell matrix of TinyNet (the tests' model, tests/conftest.py: TINY_MODEL), `precision: [fp32,
fp16, int8]` x `build.optimization_level: [0, 1, 2, 3]`: 31 tasks, every cell built and validated
(export, simplify, reference and probe shared by all cells, one precision task per precision, one
build and one validate per cell). TinyNet because its tasks are short (builds ~0.5 s, validations
~0.1 s): what Ray adds per task is then a large share of the run, so B/A is an upper bound of what
it adds to real models; `bench/ray_simulation.py` puts the measured overhead against ResNet-50's
task times.

Cold runs, each on its own copy of the project with an empty private cache, in rounds of three,
alternated (A B C, C B A, ...), `--pairs` rounds (default 3):
  A  local `-j 1` (the default);
  B  `--executor ray`: a local Ray instance started and stopped by the run (its start-up is in B's wall);
  C  local `-j 2`: the fair comparison for parallelism on 2 cores (B sends every ready task to Ray,
     which runs as many at once as there are CPUs, each at 1 thread, as C's two slots do).
Then Ray's start-up on its own: `import ray`, `ray.init` and `ray.shutdown` with the executor's
own settings (exec/ray/cluster.py) in a fresh process; and a fully cached run of B's cache with and
without `--executor ray` (since e625153 such a run starts no Ray instance: the two should match;
before, it paid Ray's start-up and shutdown, 6-12 s, for a 0.4 s run).

CPU seconds are user + sys of the whole process tree: getrusage(RUSAGE_CHILDREN) around each run,
plus, for B, the processes its raylet started (Ray's workers, which run the tasks, and its agents),
sampled from /proc: the raylet ignores SIGCHLD (SigIgn in /proc/<raylet>/status), so the kernel
drops their rusage when they end and getrusage alone counted B's workers as zero. The
"getrusage" column is what it sees without them.

Locks: B's must equal C's (both compute at 1 thread per task); A's may differ from C's only in the
float environment of the tasks that record one (tasks/float_environment.py: reference, validate),
their outputs, and the keys and input hashes that follow from those outputs.

Usage: python bench/ray_executor.py [--pairs N] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cold_matrix import pyc_state  # noqa: E402  (bench/ is this script's folder)
from parallel_jobs import descendants  # noqa: E402
from ray_simulation import simulate_and_print  # noqa: E402
from remote_cache import clone  # noqa: E402

from tests.conftest import TINY_MODEL  # noqa: E402

CONFIG = """\
model: {name: tiny, source: "tinynet:TinyNet"}
inputs:
  input: {shape: [batch, 3, 16, 16], dtype: float32}
outputs:
  logits: {shape: [batch, 10]}
export: {opset: 17, exporter: torchscript}
profiles:
  default:
    input: {min: [1, 3, 16, 16], opt: [2, 3, 16, 16], max: [4, 3, 16, 16]}
build: {targets: [SM89]}
matrix:
  precision: [fp32, fp16, int8]
  build.optimization_level: [0, 1, 2, 3]
calibration: {source: random, samples: 4}
validate:
  samples: 3
  tolerance:
    fp32: {atol: 1.0e-4, rtol: 1.0e-3}
    fp16: {atol: 1.0e-2}
    int8: {cosine: 0.9}
"""
# What the 12 cells must share: one export, simplify, reference and probe; a precision task per
# precision (fp32's passes the graph through); a build and a validate per cell.
EXPECTED_KINDS = {
    "export": 1,
    "simplify": 1,
    "reference": 1,
    "probe": 1,
    "precision": 3,
    "build": 12,
    "validate": 12,
}
VARIANTS = {
    "A": ("local -j 1", ["-j", "1"]),
    "B": ("--executor ray", ["--executor", "ray"]),
    "C": ("local -j 2", ["-j", "2"]),
}
SAMPLE_S = 0.1
STEPS = ("import ray", "ray.init", "ray.shutdown")


@dataclass
class Measure:
    wall: float
    cpu: float  # the whole tree: what the run reaped, plus Ray's workers (sampled)
    driver_cpu: float  # what getrusage sees: the run's process and what it reaped
    stdout: str = ""
    document: dict[str, Any] = field(default_factory=dict)
    lock: str = ""


class RayWorkerCpu(threading.Thread):
    """CPU seconds of the processes a raylet started (workers, agents), sampled from /proc every
    0.1 s: the raylet ignores SIGCHLD, so the kernel discards their rusage when they end and
    getrusage never sees it. Each one's last sample counts (user + sys, its waited-for children
    included: a worker's TensorRT-RTX builder); what it spends after that sample is missed."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.last: dict[int, int] = {}  # pid -> clock ticks at its last sample

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        for pid in descendants(self.pid)[1:]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                parent = Path(f"/proc/{fields[1]}/comm").read_text().strip()
            except (OSError, IndexError):
                continue
            if parent == "raylet":
                self.last[pid] = sum(int(value) for value in fields[11:15])

    @property
    def seconds(self) -> float:
        return sum(self.last.values()) / os.sysconf("SC_CLK_TCK")


def measured(command: list[str], env: dict[str, str], cwd: Path) -> Measure:
    """Run `command`: wall seconds, CPU of the process tree (what it reaped, plus Ray's workers,
    RayWorkerCpu), its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers = RayWorkerCpu(process.pid)
    workers.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    workers.done.set()
    workers.join()
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{stderr.decode()[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reaped = _cpu(after) - _cpu(before)
    return Measure(wall, reaped + workers.seconds, reaped, stdout.decode())


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "tinynet.py").write_text(TINY_MODEL)
    config = root / "matrix.yaml"
    config.write_text(CONFIG)
    return config


def trtbuild_run(config: Path, cache: Path, args: list[str]) -> Measure:
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "trtbuild", "run", str(config), "--json", *args]
    measure = measured([*command, "--out", str(config.parent / "build")], env, config.parent)
    measure.document = json.loads(measure.stdout)
    lock = config.with_suffix(".lock")
    measure.lock = lock.read_text() if lock.is_file() else ""
    return measure


def cold_run(letter: str, project: Path, scratch: Path, index: int) -> Measure:
    work = scratch / f"{letter}{index}"
    config = clone(project, work)
    measure = trtbuild_run(config, scratch / f"cache-{letter}{index}", VARIANTS[letter][1])
    check_tasks(letter, measure.document)
    return measure


def check_tasks(letter: str, document: dict[str, Any]) -> None:
    """Every task ran, the matrix shares what it should, and B's ran on Ray nodes."""
    tasks = document["tasks"]
    kinds = Counter(task["kind"] for task in tasks)
    problems = []
    if document["exit_status"] != 0:
        problems.append(f"exit status {document['exit_status']}")
    if dict(kinds) != EXPECTED_KINDS:
        problems.append(f"tasks by kind {dict(kinds)}, expected {EXPECTED_KINDS}")
    if any(task["state"] != "ran" for task in tasks):
        problems.append("not every task ran in a cold cache")
    on_nodes = sum(1 for task in tasks if task.get("node"))
    if (letter == "B") != (on_nodes == len(tasks)):
        problems.append(f"{on_nodes} of {len(tasks)} tasks ran on a Ray node")
    if problems:
        raise SystemExit(f"{VARIANTS[letter][0]}: " + "; ".join(problems))


def ray_start_alone() -> Measure:
    """`ray.init` and `ray.shutdown` as a local run makes them (exec/ray/cluster.py), in a fresh
    process: the seconds of each step on stdout."""
    probe = """
import json, time
t0 = time.perf_counter()
from trtbuild.exec.ray.cluster import RayCluster, RaySettings, import_ray
import_ray(None)
t1 = time.perf_counter()
cluster = RayCluster(RaySettings())
cluster.connect()
t2 = time.perf_counter()
cluster.cpus()  # one call to the cluster, as the executor makes
cluster.disconnect()
t3 = time.perf_counter()
print(json.dumps({"import ray": t1 - t0, "ray.init": t2 - t1, "ray.shutdown": t3 - t2}))
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory(prefix="ray-start-") as folder:
        measure = measured([sys.executable, "-c", probe], env, Path(folder))
    measure.document = json.loads(measure.stdout.strip().splitlines()[-1])
    return measure


def lock_tasks(text: str) -> dict[str, Any]:
    tasks: dict[str, Any] = json.loads(text)["tasks"]
    return tasks


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        found: dict[str, Any] = {}
        for name, item in value.items():
            found.update(flat(item, f"{prefix}.{name}" if prefix else name))
        return found
    return {prefix: value}


def lock_difference(a: str, c: str) -> tuple[list[str], list[str]]:
    """(fields that differ, those of them not explained by the float environment) between two
    locks of the same config. Explained: a task whose recorded float environment differs may
    differ in its outputs and key; a task whose inputs include such an output, in that input's
    hash and its key."""
    left, right = lock_tasks(a), lock_tasks(c)
    if set(left) != set(right):
        return ["task ids"], ["task ids"]
    float_tasks = {
        task_id
        for task_id in left
        if flat(left[task_id]).get("reproducibility.environment", "").startswith("cpus-")
        and left[task_id] != right[task_id]
    }
    moved = {flat(left[t]["outputs"])[path] for t in float_tasks for path in flat(left[t]["outputs"])}
    differing, unexplained = [], []
    for task_id in sorted(left):
        mine, theirs = flat(left[task_id]), flat(right[task_id])
        follows = task_id in float_tasks or any(
            path.startswith("inputs.") and value in moved for path, value in mine.items()
        )
        for path in sorted(set(mine) | set(theirs)):
            if mine.get(path) == theirs.get(path):
                continue
            differing.append(f"{task_id}: {path}")
            explained = (path == "key" and follows) or (
                task_id in float_tasks and (path.startswith("outputs.") or path.endswith(".environment"))
            )
            if not (explained or (path.startswith("inputs.") and mine.get(path) in moved)):
                unexplained.append(f"{task_id}: {path}")
    return differing, unexplained


def summarise_locks(runs: dict[str, list[Measure]]) -> list[str]:
    """The lock checks, one line each: B's against C's, A's against C's (per round)."""
    lines = []
    b_equal = [b.lock == c.lock for b, c in zip(runs["B"], runs["C"], strict=True)]
    lines.append(f"B's lock equals C's: {sum(b_equal)} of {len(b_equal)} rounds")
    for index, (a, c) in enumerate(zip(runs["A"], runs["C"], strict=True)):
        differing, unexplained = lock_difference(a.lock, c.lock)
        tasks = sorted({line.split(": ")[0] for line in differing})
        fields = sorted({line.split(": ")[1] for line in differing})
        verdict = "only the float environment and what follows" if not unexplained else "UNEXPLAINED"
        lines.append(
            f"A's lock against C's, round {index + 1}: {len(differing)} fields of {len(tasks)} tasks differ, "
            f"{verdict}; fields: {', '.join(fields)}"
        )
        lines += [f"    unexplained: {line}" for line in unexplained[:10]]
    return lines


def median(measures: list[Measure], value: str) -> float:
    return float(statistics.median(getattr(m, value) for m in measures))


def report(runs: dict[str, list[Measure]]) -> tuple[float, float]:
    """Print the medians, ratios and overheads; return the overhead per task, (B - C) / tasks in
    wall seconds (Ray's start-up and shutdown spread over the tasks: an upper bound), and Ray's
    fixed cost per run (ray.init alone)."""
    tasks = len(runs["A"][0].document["tasks"])
    print(f"\nmedians of {len(runs['A'])} rounds, {tasks} tasks ran in each cold run")
    print(f"{'':18}{'wall s':>9}{'CPU s':>9}{'getrusage CPU s':>17}{'sum of task s':>15}")
    for letter, (label, _) in VARIANTS.items():
        sums = statistics.median(
            sum(task["seconds"] or 0.0 for task in m.document["tasks"]) for m in runs[letter]
        )
        cells = f"{median(runs[letter], 'wall'):9.2f}{median(runs[letter], 'cpu'):9.2f}"
        print(f"{letter} {label:<16}{cells}{median(runs[letter], 'driver_cpu'):17.2f}{sums:15.2f}")
    for letter in ("warm A", "warm B", "ray.init alone"):
        cells = f"{median(runs[letter], 'wall'):9.2f}{median(runs[letter], 'cpu'):9.2f}"
        print(f"{letter:<18}{cells}{median(runs[letter], 'driver_cpu'):17.2f}")
    for top, bottom in (("B", "A"), ("B", "C"), ("C", "A"), ("warm B", "warm A")):
        wall = median(runs[top], "wall") / median(runs[bottom], "wall")
        cpu = median(runs[top], "cpu") / median(runs[bottom], "cpu")
        print(f"{top}/{bottom}: wall {wall:.3f}  CPU {cpu:.3f}")
    steps = {name: statistics.median(m.document[name] for m in runs["ray.init alone"]) for name in STEPS}
    print("ray.init alone, medians: " + ", ".join(f"{name} {steps[name]:.2f} s" for name in STEPS))
    fixed = sum(steps.values())
    overhead = (median(runs["B"], "wall") - median(runs["C"], "wall")) / tasks
    cpu_overhead = (median(runs["B"], "cpu") - median(runs["C"], "cpu")) / tasks
    per_task = f"wall {overhead * 1000:.0f} ms, CPU {cpu_overhead * 1000:.0f} ms"
    print(f"overhead per task, (B - C) / {tasks}: {per_task}  (Ray's start-up and shutdown included)")
    print(f"Ray's fixed cost per run (import, ray.init, ray.shutdown): {fixed:.2f} s")
    net = overhead - fixed / tasks
    print(f"overhead per task without the fixed cost, (B - C - fixed) / {tasks}: wall {net * 1000:.0f} ms")
    warm = median(runs["warm B"], "wall") / median(runs["warm A"], "wall")
    print(f"a fully cached run on Ray starts no instance: warm B / warm A wall {warm:.2f}")
    return overhead, fixed


def one_round(index: int, project: Path, scratch: Path, runs: dict[str, list[Measure]]) -> None:
    """Cold A, B, C (alternated); then B's cache fully cached, locally and on Ray; Ray alone."""
    for letter in "ABC" if index % 2 == 0 else "CBA":
        runs[letter].append(cold_run(letter, project, scratch, index))
        show(f"{letter} {VARIANTS[letter][0]}", index, runs[letter][-1])
        if letter != "B":
            shutil.rmtree(scratch / f"cache-{letter}{index}")
    cached, cache = scratch / f"B{index}" / "matrix.yaml", scratch / f"cache-B{index}"
    for letter in "AB" if index % 2 == 0 else "BA":
        runs[f"warm {letter}"].append(trtbuild_run(cached, cache, VARIANTS[letter][1]))
        show(f"warm {letter}", index, runs[f"warm {letter}"][-1])
    shutil.rmtree(cache)
    runs["ray.init alone"].append(ray_start_alone())
    show("ray.init alone", index, runs["ray.init alone"][-1])


def show(label: str, index: int, measure: Measure) -> None:
    print(
        f"  round {index + 1} {label:<18} wall {measure.wall:6.2f} s  CPU {measure.cpu:6.2f} s  "
        f"(getrusage alone {measure.driver_cpu:6.2f} s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=3, help="rounds of A, B, C (alternated)")
    parser.add_argument("--scratch", type=Path, default=None, help="where the private caches go")
    args = parser.parse_args()
    print(f"machine: {len(os.sched_getaffinity(0))} CPUs usable, load average {os.getloadavg()}")
    print(pyc_state())
    runs: dict[str, list[Measure]] = {name: [] for name in [*VARIANTS, "warm A", "warm B", "ray.init alone"]}
    with tempfile.TemporaryDirectory(prefix="trtbuild-ray-bench-", dir=args.scratch) as folder:
        scratch = Path(folder)
        project = make_project(scratch / "project")
        for index in range(args.pairs):
            one_round(index, project, scratch, runs)
    print("\n".join(summarise_locks(runs)))
    overhead, fixed = report(runs)
    print(f"load average at the end {os.getloadavg()}\n")
    simulate_and_print(max(overhead, 0.0), fixed_s=max(fixed, 0.0))


if __name__ == "__main__":
    main()
