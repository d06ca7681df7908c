"""Benchmark: what the test suite's trims (issue 15) save, before and after, side by side in one run.

Each test module the trims touched runs under pytest in two trees: BEFORE (the files of a git
commit, extracted to a temporary folder) and AFTER (this checkout), in pairs whose order alternates
(before then after, after then before, ...) so that a change in the machine's load falls on both.
For each module it prints the CPU seconds of the pytest process tree (user + sys of the children)
and the wall time, both sides and their ratio; then the totals, which is what a CI run of the suite
saves (less the one cold run the session fixture `tiny_results` costs once per session, counted in
every module here that uses it: see the `shared fixture` line). Whether .pyc files were present is
printed too: with PYTHONDONTWRITEBYTECODE=1 and no __pycache__, every interpreter compiles trtbuild
and the tests from source.

With --together, all the modules also run in one pytest process per side, as in CI (the session
fixture built once): the closest figure to what the whole suite saves.

Usage: python bench/suite_time.py [--before REF] [--rounds N] [--together] [MODULE...]
  REF: the commit before the trims (default a6e25fb, the branch's base); N: pairs per module (1).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
MODULES = [
    "tests/remote/test_s3_remote.py",
    "tests/cli/test_remote_settings.py",
    "tests/e2e/test_kill_points.py",
    "tests/e2e/test_lock_review.py",
    "tests/e2e/test_locked.py",
    "tests/e2e/test_noop.py",
    "tests/e2e/test_read_only_cache.py",
    "tests/e2e/test_reproducible.py",
    "tests/e2e/test_run_cli.py",
    "tests/tasks/test_validate_gpu_key.py",
]


def extract(ref: str, into: Path) -> Path:
    """The files of `ref` (git archive), so a side runs that commit's tests against its trtbuild."""
    archive = into.with_suffix(".tar")
    subprocess.run(["git", "archive", "-o", str(archive), ref], cwd=HERE, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def row(name: str, cpu_b: float, cpu_a: float, wall_b: float, wall_a: float) -> str:
    return f"{name:42} {cpu_b:10.1f} {cpu_a:9.1f} {cpu_a / cpu_b:6.2f} {wall_b:11.1f} {wall_a:10.1f}"


def pytest_once(tree: Path, *modules: str) -> tuple[float, float, str]:
    """CPU seconds (children), wall seconds and pytest's last line for `modules` in `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("TRTBUILD_CACHE_DIR", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", *modules, "-q", "-p", "no:cacheprovider"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    lines = completed.stdout.strip().splitlines()
    return cpu, wall, lines[-1] if lines else f"exit {completed.returncode}: {completed.stderr[-300:]}"


def pyc_present() -> str:
    import torch

    torch_pyc = any(Path(torch.__file__).parent.glob("__pycache__/*.pyc"))
    ours = sum(1 for _ in HERE.glob("trtbuild/**/__pycache__/*.pyc"))
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
    return f"PYTHONDONTWRITEBYTECODE={flag!r}; torch .pyc present: {torch_pyc}; trtbuild .pyc files: {ours}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="a6e25fb")
    parser.add_argument("--after", default=None, help="a commit instead of this checkout's files")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--together", action="store_true")
    parser.add_argument("modules", nargs="*", default=MODULES)
    args = parser.parse_args()
    print(pyc_present())
    after = args.after or "this checkout"
    print(f"load average at start: {os.getloadavg()[0]:.2f}; before = {args.before}, after = {after}")
    columns = ("CPU before", "CPU after", "ratio", "wall before", "wall after")
    print(f"{'module':42} " + " ".join(columns))
    totals = [0.0, 0.0, 0.0, 0.0]
    with tempfile.TemporaryDirectory(prefix="trtbuild-suite-time-") as scratch:
        trees = {"before": extract(args.before, Path(scratch) / "before")}
        trees["after"] = extract(args.after, Path(scratch) / "after") if args.after else HERE
        flip = False
        for module in args.modules:
            measured: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
            for _ in range(args.rounds):
                for side in ("after", "before") if flip else ("before", "after"):
                    cpu, wall, last = pytest_once(trees[side], module)
                    measured[side].append((cpu, wall))
                    if "failed" in last or "error" in last or "passed" not in last:
                        print(f"  {side} {module}: {last}")
                flip = not flip
            means = [
                sum(m[i] for m in measured[side]) / args.rounds
                for side in ("before", "after")
                for i in (0, 1)
            ]
            cpu_b, wall_b, cpu_a, wall_a = means
            totals = [t + v for t, v in zip(totals, (cpu_b, cpu_a, wall_b, wall_a), strict=True)]
            print(row(module, cpu_b, cpu_a, wall_b, wall_a))
        cpu_b, cpu_a, wall_b, wall_a = totals
        print(row("sum of the modules", cpu_b, cpu_a, wall_b, wall_a))
        print(
            f"saved: {cpu_b - cpu_a:.0f} CPU s, {wall_b - wall_a:.0f} s wall (each module pays tiny_results)"
        )
        if args.together:
            runs = {side: pytest_once(trees[side], *args.modules) for side in ("after", "before")}
            (cpu_a, wall_a, last_a), (cpu_b, wall_b, last_b) = runs["after"], runs["before"]
            print(row("all in one pytest", cpu_b, cpu_a, wall_b, wall_a))
            print(f"  before: {last_b}; after: {last_a}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
