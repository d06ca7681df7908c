"""Benchmark: what the cache's checks (issue 13) cost, against the trtbuild they were added to.

Two checkouts side by side: this one (its trtbuild package copied, without __pycache__) and a
baseline commit (default 4591b80, the commit before the checks), extracted with `git archive`, both
into a scratch folder. Each gets its own cache and project
copy (their cache formats differ) and builds the same config once; then paired rounds, in rotating
order, time two fully cached runs:

- `no-op`: `trtbuild run CONFIG` with build/ in place: entries are digest-checked, blobs checked
  through the stat cache (now with ctime), nothing is linked. Target: no slower than before.
- `relink`: build/ removed first, so every artifact is linked again from the cache: the cold path,
  where each linked blob is now re-hashed in full.

Printed: medians of wall and CPU seconds (user+sys of the process tree, getrusage(RUSAGE_CHILDREN)),
and the ratios new/baseline side by side, plus whether .pyc files were present for trtbuild's modules.

Usage:
  python bench/cache_checks.py [--config PATH] [--base COMMIT] [--repeat 9] [--keep]

Without --config, a generated model (two 1024x1024 linear layers, 8 MB of weights; ~20 s to build)
is used; `--config configs/resnet.yaml` measures ResNet-50 (~3 min and 1.5 GB of cache per
checkout: 3 GB in all).
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
WIDE_MODEL = """
import torch


class WideNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        wide = torch.nn.Linear
        self.body = torch.nn.Sequential(wide(1024, 1024), torch.nn.ReLU(), wide(1024, 1024))

    def forward(self, x):
        return self.body(x)
"""
WIDE_CONFIG = """\
model: {name: wide, source: "widenet:WideNet"}
inputs:
  x: {shape: [batch, 1024], dtype: float32}
outputs:
  y: {shape: [batch, 1024]}
export: {opset: 17, exporter: torchscript}
profiles:
  default:
    x: {min: [1, 1024], opt: [2, 1024], max: [4, 1024]}
build:
  targets: [SM89]
validate:
  samples: 2
  tolerance:
    fp32: {atol: 1.0e-3, rtol: 1.0e-3}
"""


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU counts every process the command waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def set_up(
    scratch: Path, name: str, tree: Path, config: Path | None
) -> tuple[list[str], Path, dict[str, str]]:
    """A checkout's project copy, cache and environment; the config built once."""
    project = scratch / f"project-{name}"
    if config is None:
        project.mkdir()
        (project / "widenet.py").write_text(WIDE_MODEL)
        (project / "wide.yaml").write_text(WIDE_CONFIG)
        target = project / "wide.yaml"
    else:
        shutil.copytree(config.parent, project)
        target = project / config.name
    env = {**os.environ, "PYTHONPATH": str(tree), "TRTBUILD_CACHE_DIR": str(scratch / f"cache-{name}")}
    command = [sys.executable, "-m", "trtbuild", "run", str(target), "--out", str(project / "build")]
    print(f"building {target.name} with the {name} checkout ({tree})...", flush=True)
    measure(command, project, env)
    return command, project, env


def has_pyc(tree: Path) -> bool:
    return any((tree / "trtbuild").rglob("__pycache__"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--base", default="4591b80")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-cache-checks-"))
    try:
        # This checkout's package copied without __pycache__, so neither side reads .pyc files
        # unless the environment writes them (the same for both).
        new = scratch / "new"
        shutil.copytree(REPO / "trtbuild", new / "trtbuild", ignore=shutil.ignore_patterns("__pycache__"))
        base = scratch / "baseline"
        base.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.base], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        config = args.config.resolve() if args.config else None
        trees = {"new": new, "base": base}
        setups = {name: set_up(scratch, name, tree, config) for name, tree in trees.items()}
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for round_ in range(args.repeat):
            order = list(setups) if round_ % 2 == 0 else list(reversed(setups))
            for scenario in ("no-op", "relink"):
                for name in order:
                    command, project, env = setups[name]
                    if scenario == "relink":
                        shutil.rmtree(project / "build")
                    times.setdefault((scenario, name), []).append(measure(command, project, env))
        report(times, args, {name: has_pyc(tree) for name, tree in trees.items()})
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def report(
    times: dict[tuple[str, str], list[tuple[float, float]]], args: argparse.Namespace, pyc: dict[str, bool]
) -> None:
    print(
        f"\nconfig: {args.config or 'generated WideNet (8 MB of weights)'}; baseline {args.base}; "
        f"{args.repeat} paired rounds; medians"
    )
    print(
        "trtbuild .pyc files: "
        + ", ".join(f"{n} {'present' if p else 'absent'}" for n, p in pyc.items())
        + f"; PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}"
    )
    print(
        f"{'scenario':<8} {'new wall':>9} {'base wall':>9} {'ratio':>6}"
        f"   {'new CPU':>8} {'base CPU':>8} {'ratio':>6}"
    )
    for scenario in ("no-op", "relink"):
        new = times[(scenario, "new")]
        base = times[(scenario, "base")]
        nw, bw = statistics.median(w for w, _ in new), statistics.median(w for w, _ in base)
        nc, bc = statistics.median(c for _, c in new), statistics.median(c for _, c in base)
        print(
            f"{scenario:<8} {nw:>8.3f}s {bw:>8.3f}s {nw / bw:>5.2f}x"
            f"   {nc:>7.3f}s {bc:>7.3f}s {nc / bc:>5.2f}x"
        )


if __name__ == "__main__":
    main()
