"""Benchmark: what turning the remote cache on costs a fully cached run (issue 14, settings).

A fully cached run finds every task in the local cache, so a remote is never contacted: what it
pays for is choosing the remote (the flag, `$TRTBUILD_REMOTE_CACHE`, or finding and reading the
project's `.trtbuild.yaml`). The tiny test model is built once into a scratch cache (a few seconds),
then `trtbuild run` is timed in paired rounds, each round running every variant once in rotating
order, and reported as medians of wall and CPU seconds (user+sys of the process tree), with each
variant's ratio to the run without a remote side by side:

- `none`: no remote configured;
- `flag`: `--remote-cache file:///…/share`;
- `variable`: `TRTBUILD_REMOTE_CACHE=file:///…/share`;
- `project file`: a `.trtbuild.yaml` beside the config naming the share.

Bytecode: PYTHONDONTWRITEBYTECODE is kept as the environment has it; the script says whether
trtbuild's modules had .pyc files (a checkout's __pycache__) when it ran.

Usage:  python bench/remote_settings.py [--repeat 15] [--keep]
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
sys.path.insert(0, str(REPO))

from tests.conftest import TINY_CONFIG, TINY_MODEL  # noqa: E402

VARIANTS = ("none", "flag", "variable", "project file")


def measure(command: list[str], cwd: Path, env: dict[str, str], *, noop: bool = True) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU counts every process the command waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0 or (noop and "Nothing to do" not in completed.stdout):
        sys.exit(f"{' '.join(command)} was not a no-op ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def set_up(scratch: Path) -> tuple[Path, dict[str, str], str]:
    project = scratch / "project"
    project.mkdir()
    (project / ".git").mkdir()  # the project file is looked for up to here
    (project / "tinynet.py").write_text(TINY_MODEL)
    (project / "tiny.yaml").write_text(TINY_CONFIG)
    share = scratch / "share"
    share.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRTBUILD_")}
    env.update(TRTBUILD_CACHE_DIR=str(scratch / "cache"), PYTHONPATH=str(REPO))
    url = f"file://{share}"
    # Built once, publishing to the share: every variant then finds every task locally.
    build = [sys.executable, "-m", "trtbuild", "run", "tiny.yaml", "--remote-cache", url]
    measure(build, project, env, noop=False)
    return project, env, url


def variant(name: str, project: Path, env: dict[str, str], url: str) -> tuple[list[str], dict[str, str]]:
    command = [sys.executable, "-m", "trtbuild", "run", "tiny.yaml"]
    settings = project / ".trtbuild.yaml"
    settings.unlink(missing_ok=True)
    if name == "flag":
        return [*command, "--remote-cache", url], env
    if name == "variable":
        return command, {**env, "TRTBUILD_REMOTE_CACHE": url}
    if name == "project file":
        settings.write_text(f"remote_cache:\n  url: {url}\n  read_only: true\n")
    return command, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="trtbuild-remote-settings-"))
    try:
        project, env, url = set_up(scratch)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
        for round_ in range(args.repeat):
            shift = round_ % len(VARIANTS)
            for name in VARIANTS[shift:] + VARIANTS[:shift]:
                command, environment = variant(name, project, env, url)
                times[name].append(measure(command, project, environment))
        report(times, args.repeat)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def report(times: dict[str, list[tuple[float, float]]], repeat: int) -> None:
    modules = list((REPO / "trtbuild").rglob("*.py"))
    compiled = sum(any((m.parent / "__pycache__").glob(f"{m.stem}.cpython-*.pyc")) for m in modules)
    print(f"fully cached `trtbuild run` of the tiny model, {repeat} paired rounds, medians")
    bytecode = os.environ.get("PYTHONDONTWRITEBYTECODE", "")
    print(f"PYTHONDONTWRITEBYTECODE={bytecode!r}; trtbuild modules with .pyc: {compiled}/{len(modules)}")
    print(f"{'remote set by':<14} {'wall ms':>8} {'CPU ms':>8} {'wall/none':>10} {'CPU/none':>9}")
    base_wall = statistics.median(w for w, _ in times["none"])
    base_cpu = statistics.median(c for _, c in times["none"])
    for name in VARIANTS:
        wall = statistics.median(w for w, _ in times[name])
        cpu = statistics.median(c for _, c in times[name])
        print(f"{name:<14} {wall * 1e3:8.0f} {cpu * 1e3:8.0f} {wall / base_wall:10.2f} {cpu / base_cpu:9.2f}")


if __name__ == "__main__":
    main()
