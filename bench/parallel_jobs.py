"""Benchmark: a cold `trtbuild run` at `-j 1` against `-j 2` (issue 12, target 5), side by side.

Each run goes into an empty private cache and output folder, on a copy of the config (so the
committed lock beside it is never rewritten). For each it prints:
- wall seconds, and CPU seconds of the whole process tree (user+sys of every descendant waited for:
  the CLI, its worker processes, the engine builders);
- peak memory of the tree: the sum of the resident sets of the run's live descendants, sampled from
  /proc every 0.2 s (shared pages count once per process, so this is an upper bound); the largest
  task's peak (its worker's VmHWM, from --json); and ru_maxrss of the largest process, which is a
  lower bound: each worker resets its peak before a task, to measure the task's own;
- the sum of task seconds and the critical path (the longest dependency chain of task seconds, from
  the run's own --json), the floor no number of jobs can go under;
then the ratios -j 2 / -j 1. Targets: wall ratio <= 0.85 on 2 cores, peak tree memory at -j 1 <= 4 GiB.
A cold ResNet-50 run takes minutes, so `--repeat` defaults to 1 (runs alternate -j 1, -j 2).

Usage: python bench/parallel_jobs.py [--config configs/resnet.yaml] [--repeat N] [--jobs 2]
                                    [--baseline DIR]   (DIR: another checkout, run at -j 1 too)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAGE = os.sysconf("SC_PAGE_SIZE")
GIB = float(1 << 30)


@dataclass
class Measure:
    wall: float
    cpu: float
    peak_tree: int
    max_rss: int
    task_seconds: float
    critical_path: float
    exit_status: int
    largest_tasks: list[tuple[str, float]]  # (task, its worker's peak GiB), largest first


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def resident(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


class TreeSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak = max(self.peak, sum(resident(p) for p in descendants(self.pid)))


def critical_path(config: Path, seconds: dict[str, float]) -> float:
    """The longest chain of task seconds through the planned graph's dependencies."""
    from trtbuild import api

    with tempfile.TemporaryDirectory() as empty:
        graph = api.plan([config], cache_dir=Path(empty)).graph
    finish: dict[str, float] = {}
    for node in graph.nodes.values():  # topological order
        start = max((finish[dep.node_id] for dep in node.deps.values()), default=0.0)
        finish[node.id] = start + seconds.get(node.id, 0.0)
    return max(finish.values(), default=0.0)


@dataclass(frozen=True)
class Variant:
    label: str
    jobs: int
    checkout: Path | None = None  # another trtbuild checkout (PYTHONPATH), e.g. the executor before workers


def cold_run(config: Path, variant: Variant, scratch: Path) -> Measure:
    jobs = variant.jobs
    work = scratch / variant.label.replace(" ", "_")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    copy = work / config.name
    shutil.copy(config, copy)
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(work / "cache")}
    if variant.checkout is not None:
        env["PYTHONPATH"] = str(variant.checkout)
    command = [sys.executable, "-m", "trtbuild", "run", str(copy), "-j", str(jobs), "--json"]
    command += ["--out", str(work / "build")]
    started = time.perf_counter()
    with open(work / "stderr.log", "wb") as log:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=log)
        sampler = TreeSampler(process.pid)
        sampler.start()
        assert process.stdout is not None
        stdout = process.stdout.read()
        # wait4: this run's own CPU and largest ru_maxrss (the CLI and every descendant it reaped),
        # not the cumulative RUSAGE_CHILDREN of this benchmark's earlier runs.
        _, _, usage = os.wait4(process.pid, 0)
        process.returncode = 0  # reaped here; Popen must not wait for it again
        sampler.done.set()
        sampler.join()
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    document = json.loads(stdout)
    seconds = {task["id"]: task["seconds"] for task in document["tasks"]}
    peaks = [(t["id"], round(t["peak_memory"] / GIB, 2)) for t in document["tasks"] if t.get("peak_memory")]
    path = critical_path(copy, seconds)
    shutil.rmtree(work / "cache", ignore_errors=True)  # a ResNet-50 cache is ~1.5 GB
    shutil.rmtree(work / "build", ignore_errors=True)
    largest = sorted(peaks, key=lambda item: -item[1])[:4]
    return Measure(
        wall,
        cpu,
        sampler.peak,
        usage.ru_maxrss * 1024,
        sum(seconds.values()),
        path,
        document["exit_status"],
        largest,
    )


def pyc_present() -> str:
    caches = list((ROOT / "trtbuild").rglob("__pycache__/*.pyc"))
    dont_write = os.environ.get("PYTHONDONTWRITEBYTECODE") or sys.flags.dont_write_bytecode
    return f"trtbuild .pyc files: {len(caches)}; PYTHONDONTWRITEBYTECODE={'set' if dont_write else 'unset'}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "resnet.yaml")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="compared with -j 1")
    parser.add_argument("--scratch", type=Path, default=None, help="where the private caches go")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also run -j 1 with this trtbuild checkout (e.g. `git archive 61db8bf`: tasks on threads in "
        "trtbuild's process) and print it as a third column",
    )
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    print(f"{args.config}; CPUs usable {cpus}; load {os.getloadavg()}; {pyc_present()}")
    variants = [Variant("-j 1", 1), Variant(f"-j {args.jobs}", args.jobs)]
    if args.baseline is not None:
        variants.append(Variant("baseline -j 1", 1, args.baseline.resolve()))
    runs: dict[Variant, list[Measure]] = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory(prefix="trtbuild-jobs-", dir=args.scratch) as scratch:
        for index in range(args.repeat):
            for variant in variants:
                measure = cold_run(args.config.resolve(), variant, Path(scratch))
                runs[variant].append(measure)
                print(f"  run {index + 1} {variant.label}: {measure}", flush=True)
    report(runs)
    print(f"load at the end {os.getloadavg()}")


def report(runs: dict[Variant, list[Measure]]) -> None:
    """Medians side by side; ratios of each other column to -j 1."""
    rows = [
        ("wall s", lambda m: m.wall, "{:.1f}"),
        ("CPU s (tree)", lambda m: m.cpu, "{:.1f}"),
        ("peak RSS of the tree GiB", lambda m: m.peak_tree / GIB, "{:.2f}"),
        ("largest task peak GiB", lambda m: max((p for _, p in m.largest_tasks), default=0.0), "{:.2f}"),
        ("ru_maxrss (reset per task)", lambda m: m.max_rss / GIB, "{:.2f}"),
        ("sum of task s", lambda m: m.task_seconds, "{:.1f}"),
        ("critical path s", lambda m: m.critical_path, "{:.1f}"),
    ]
    variants = list(runs)
    first = variants[0]
    header = "".join(f"{v.label:>15}" for v in variants)
    ratios = "".join(f"{v.label + ' / -j 1':>24}" for v in variants[1:])
    print(f"\n{'median of ' + str(len(runs[first])):<28}{header}{ratios}")
    for name, value, form in rows:
        medians = [statistics.median(value(m) for m in runs[v]) for v in variants]
        cells = "".join(f"{form.format(median):>15}" for median in medians)
        shares = "".join(f"{(m / medians[0] if medians[0] else float('nan')):>24.2f}" for m in medians[1:])
        print(f"{name:<28}{cells}{shares}")
    statuses = {m.exit_status for ms in runs.values() for m in ms}
    print(f"exit statuses: {sorted(statuses)}")
    path = statistics.median(m.critical_path for m in runs[first])
    wall = statistics.median(m.wall for m in runs[first])
    print(f"floor of any -j N / -j 1 wall (-j 1's critical path / its wall): {path / wall:.2f}")


if __name__ == "__main__":
    main()
