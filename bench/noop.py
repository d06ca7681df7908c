"""Benchmark: a no-op `trtbuild run` against no-op `dvc repro` and `snakemake -c1` (issue 12, target 1).

The peers run the same 11-task shape as configs/resnet.yaml (bench/peers/: export, simplify, 3
precision, 3 build, 3 validate; `step.py` copies a file, so only the tools' bookkeeping is timed) on a
100 MB model.pt; trtbuild runs the real config, fully cached. Everything is set up in a scratch folder,
run once to completion, then timed in paired rounds (each round runs every tool once, in rotating
order) and reported as medians of wall and CPU seconds (user+sys of the process tree), with the
ratios trtbuild/dvc and trtbuild/snakemake side by side, in two modes:

- `pyc`: bytecode written to and read from a private cache (PYTHONPYCACHEPREFIX), for every tool:
  what an installed tool has. Target 1 of issue 12 is stated for this mode.
- `no-pyc`: PYTHONDONTWRITEBYTECODE=1 (this workplace's default): trtbuild's own modules are
  compiled on every run unless its checkout has __pycache__ folders (the script says which);
  installed packages keep the .pyc files pip wrote.

Usage:
  python bench/noop.py [--repeat 15] [--cache DIR] [--dvc PATH] [--snakemake PATH] [--keep]

--cache: an existing trtbuild cache holding configs/resnet.yaml's results (else a cold run fills a
scratch cache first: about 3 minutes on 2 idle cores, 1.5 GB). dvc and snakemake come from PATH or
the options (`pip install -e .[bench]` in a virtualenv of their own: see pyproject.toml).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "bench" / "peers"
MODEL_BYTES = 100_000_000


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU counts every process the command waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def set_up_peers(scratch: Path, env: dict[str, str], dvc: str, snakemake: str) -> Path:
    folder = scratch / "peers"
    shutil.copytree(PEERS, folder)
    (folder / "model.pt").write_bytes(os.urandom(MODEL_BYTES))
    for command in (
        ["git", "init", "-q"],
        [dvc, "init", "-q"],
        [dvc, "repro", "-q"],
        [snakemake, "-c1", "-q"],
    ):
        subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    return folder


def set_up_trtbuild(scratch: Path, env: dict[str, str]) -> tuple[list[str], Path]:
    """The config in a folder of its own (its lock and build/ are written there, not in the repo)."""
    folder = scratch / "trtbuild"
    folder.mkdir()
    shutil.copy(REPO / "configs" / "resnet.yaml", folder / "resnet.yaml")
    command = [sys.executable, "-m", "trtbuild", "run", "resnet.yaml"]
    print("trtbuild: first run (cold unless --cache holds the results) ...", flush=True)
    completed = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"trtbuild run failed:\n{completed.stderr[-3000:]}")
    return command, folder


def mode_env(base: dict[str, str], mode: str, scratch: Path) -> dict[str, str]:
    env = dict(base)
    if mode == "pyc":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(scratch / "pyc")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    return env


def time_mode(
    commands: dict[str, tuple[list[str], Path]], env: dict[str, str], repeat: int
) -> dict[str, tuple[float, float]]:
    """Tool -> (median wall, median CPU), from `repeat` rounds of paired runs (one warm-up round)."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    names = list(commands)
    for round_ in range(repeat + 1):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            wall_cpu = measure(*commands[name], env)
            if round_:
                samples[name].append(wall_cpu)
    return {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in samples.items()
    }


def report(mode: str, medians: dict[str, tuple[float, float]], repeat: int) -> None:
    own_pyc = any(REPO.glob("trtbuild/**/__pycache__/*.pyc"))
    note = (
        "all .pyc present (private PYTHONPYCACHEPREFIX, warmed)"
        if mode == "pyc"
        else "PYTHONDONTWRITEBYTECODE=1; trtbuild's own .pyc in the checkout: " + ("yes" if own_pyc else "no")
    )
    print(f"\nmode {mode}: {note}; medians of {repeat} paired rounds")
    print(f"  {'':<22}{'wall s':>9}{'CPU s':>9}")
    for name, (wall, cpu) in medians.items():
        print(f"  {name:<22}{wall:9.3f}{cpu:9.3f}")
    trt_wall, trt_cpu = medians["trtbuild run (no-op)"]
    for peer, target in (("dvc repro", 0.12), ("snakemake -c1", 0.10)):
        wall, cpu = medians[peer]
        ratios = f"wall {trt_wall / wall:6.3f}  CPU {trt_cpu / cpu:6.3f}"
        print(f"  trtbuild/{peer:<13} {ratios}   (target <= {target})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--cache", type=Path, default=None, help="a warm trtbuild cache for resnet.yaml")
    parser.add_argument("--dvc", default=shutil.which("dvc"))
    parser.add_argument("--snakemake", default=shutil.which("snakemake"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    if not args.dvc or not args.snakemake:
        sys.exit("dvc and snakemake are needed: pip install -e .[bench] (or pass --dvc/--snakemake)")
    scratch = Path(tempfile.mkdtemp(prefix="trtbuild-noop-bench-"))
    try:
        cache = args.cache.resolve() if args.cache else scratch / "cache"
        # The peers' step.py runs under the `python` next to snakemake/dvc.
        path = os.pathsep.join([str(Path(args.snakemake).parent), os.environ.get("PATH", "")])
        base = {**os.environ, "PATH": path, "TRTBUILD_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
        peers = set_up_peers(scratch, mode_env(base, "pyc", scratch), args.dvc, args.snakemake)
        trtbuild, folder = set_up_trtbuild(scratch, mode_env(base, "pyc", scratch))
        commands = {
            "trtbuild run (no-op)": (trtbuild, folder),
            "dvc repro": ([args.dvc, "repro"], peers),
            "snakemake -c1": ([args.snakemake, "-c1"], peers),
            "python -c pass": ([sys.executable, "-c", "pass"], folder),
        }
        print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs")
        for mode in ("pyc", "no-pyc"):
            report(mode, time_mode(commands, mode_env(base, mode, scratch), args.repeat), args.repeat)
        print(f"load average at end: {os.getloadavg()}")
    finally:
        if args.keep:
            print(f"scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
