"""Benchmark: a cold `trtbuild run` of a matrix against the naive per-cell pipeline, side by side.

In one invocation, for each repetition:
- naive: `bench/naive_pipeline.py` for every cell of the config, one process per cell, one after
  the other, nothing shared or cached (see that file's docstring for what it does and why);
- trtbuild -j N (N from --jobs, default 1): a cold `trtbuild run --json` on an empty private cache.

Each is measured from a wrapper process: wall seconds, CPU seconds of the whole process tree (user
+ sys of every descendant, build workers included) and the peak RSS of its largest process. CPU
seconds are the figure to compare on a loaded machine; wall on an idle one. For trtbuild it also
prints the sum of the run's unique task times (the `--json` document's seconds of tasks that ran)
and wall / that sum: what planning, hashing, storing and process start-up add on top of the work.

Usage: python bench/cold_matrix.py [--config configs/resnet.yaml] [--jobs 1 2] [--repeat 1] [--keep]
The config is copied (with its folder's other files, not its lock) into a scratch folder, so the
run writes no lock into the repository. Scratch folders (a ResNet-50 cache is ~1.5 GB) are deleted
after each measurement unless --keep.
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
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measured(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run `command` in a wrapper process; wall, process-tree CPU, largest process's peak RSS and
    the command's stdout."""
    wrapper = [sys.executable, str(Path(__file__).resolve()), "--measure-inner", "--", *command]
    completed = subprocess.run(wrapper, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stderr.strip().splitlines()[-1])
    result["stdout"] = completed.stdout
    return result


def measure_inner(commands: list[list[str]]) -> None:
    """(In the wrapper.) Run the commands one after the other; report on stderr's last line."""
    started = time.perf_counter()
    for command in commands:
        completed = subprocess.run(command, check=False, capture_output=True, text=True)
        sys.stdout.write(completed.stdout)
        if completed.returncode not in (0, 1):  # 1: a gate failed, the work was still done
            sys.stderr.write(completed.stderr[-3000:])
            sys.exit(completed.returncode)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = {
        "wall": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # the largest single descendant (Linux: KiB)
    }
    sys.stderr.write(json.dumps(report) + "\n")


def naive(config: Path, cells: list[str], scratch: Path, env: dict[str, str]) -> dict[str, Any]:
    commands = [
        [
            sys.executable,
            str(REPO / "bench" / "naive_pipeline.py"),
            str(config),
            cell,
            "--workdir",
            str(scratch / "naive" / cell),
            "--toolchains",
            str(scratch / "naive-toolchains"),
        ]
        for cell in cells
    ]
    # One wrapper for all cells: CPU is their sum, peak RSS the largest cell's process.
    wrapper_commands = json.dumps(commands)
    return measured(["--many", wrapper_commands], env)


def trtbuild(config: Path, jobs: int, scratch: Path, env: dict[str, str]) -> dict[str, Any]:
    cache, out = scratch / f"cache-j{jobs}", scratch / f"out-j{jobs}"
    command = [sys.executable, "-m", "trtbuild", "run", str(config), "-j", str(jobs), "--json"]
    result = measured([*command, "--out", str(out)], {**env, "TRTBUILD_CACHE_DIR": str(cache)})
    document = json.loads(result["stdout"])
    ran = [task for task in document["tasks"] if task["state"] == "ran"]
    result["task_sum"] = sum(task["seconds"] or 0.0 for task in ran)
    result["tasks"] = {task["id"]: task["seconds"] for task in ran}
    result["exit_status"] = document.get("exit_status")
    return result


def pyc_state() -> str:
    """Whether this interpreter reads .pyc files for trtbuild and torch (cold imports cost more
    without them: this workplace sets PYTHONDONTWRITEBYTECODE=1)."""
    import importlib.util

    found = []
    for name in ("trtbuild", "torch", "onnx", "tensorrt_rtx", "modelopt"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        cached = Path(spec.origin).parent / "__pycache__"
        found.append(f"{name}: {'yes' if cached.is_dir() and any(cached.iterdir()) else 'no'}")
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
    return f".pyc files present: {', '.join(found)}; PYTHONDONTWRITEBYTECODE={flag or '(unset)'}"


def cell_names(config: Path) -> list[str]:
    from trtbuild.spec.loader import load_specs
    from trtbuild.tasks.pipeline import PIPELINE

    return [cell.name for cell in load_specs([config], checks=PIPELINE.spec_checks)[0].cells]


def copied_config(config: Path, scratch: Path) -> Path:
    folder = scratch / "config"
    shutil.copytree(config.parent, folder, ignore=shutil.ignore_patterns("*.lock", "__pycache__"))
    return folder / config.name


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure-inner":
        rest = sys.argv[3:]
        measure_inner(json.loads(rest[1]) if rest[0] == "--many" else [rest])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "resnet.yaml")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where caches and outputs go (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cold-matrix-", dir=args.scratch))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    config = copied_config(args.config.resolve(), root)
    cells = cell_names(config)
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for index in range(args.repeat):
            scratch = root / f"rep{index}"
            runs.setdefault("naive", []).append(naive(config, cells, scratch, env))
            _clean(scratch, args.keep)
            for jobs in args.jobs:
                runs.setdefault(f"trtbuild -j {jobs}", []).append(trtbuild(config, jobs, scratch, env))
                _clean(scratch, args.keep)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    _print(args.config, cells, args.repeat, runs)


def _clean(scratch: Path, keep: bool) -> None:
    if not keep:
        shutil.rmtree(scratch, ignore_errors=True)


def _print(config: Path, cells: list[str], repeat: int, runs: dict[str, list[dict[str, Any]]]) -> None:
    def median(name: str, field: str) -> float:
        return statistics.median(run[field] for run in runs[name])

    print(f"config: {config} ({len(cells)} cells: {', '.join(cells)}), {repeat} repetition(s), medians")
    print(pyc_state())
    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'':16}{'wall s':>9}{'CPU s':>9}{'peak RSS MiB':>14}{'wall/naive':>12}{'CPU/naive':>11}")
    for name in runs:
        wall, cpu = median(name, "wall"), median(name, "cpu")
        ratios = f"{wall / median('naive', 'wall'):12.3f}{cpu / median('naive', 'cpu'):11.3f}"
        print(f"{name:16}{wall:9.1f}{cpu:9.1f}{median(name, 'peak_rss_mib'):14.0f}{ratios}")
    for name in runs:
        if name == "naive":
            continue
        task_sum = median(name, "task_sum")
        print(
            f"{name}: sum of unique task times {task_sum:.1f} s, "
            f"wall/sum {median(name, 'wall') / task_sum:.3f}, "
            f"exit status {[run['exit_status'] for run in runs[name]]}"
        )
        slowest = sorted(runs[name][-1]["tasks"].items(), key=lambda item: -(item[1] or 0.0))[:6]
        print("  slowest tasks: " + ", ".join(f"{task} {seconds:.1f} s" for task, seconds in slowest))


if __name__ == "__main__":
    main()
