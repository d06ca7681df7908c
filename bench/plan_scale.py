"""Benchmark: `trtbuild plan` on specs of 10 / 100 / 1,000 / 10,000 cells (issue 12, target 2).

Each spec is the tiny test model with a matrix of two axes, `validate.seed` (cells/2 seeds) and
`build.targets` ([SM89] or [SM86]): every cell has its own validate task and shares export,
simplify, probe and precision with all others and its build with half of them. The cache is empty,
so every task would run; `plan` prints its table (to a pipe) as a user would see it.

The model module defines the class without importing torch: planning never runs the model, but its
preflight imports the model source to check `forward`, and torch's import (about 2 s) would be the
same fixed cost at every size. Here the figures are trtbuild's own planning cost.

Prints, per size: wall and CPU seconds (medians), peak RSS, CPU per cell, and the linearity: the
CPU per added cell between consecutive sizes (flat when planning is linear).

Usage: python bench/plan_scale.py [--repeat 3] [--sizes 10 100 1000 10000] [--pyc]

--pyc: bytecode written to and read from a private cache (PYTHONPYCACHEPREFIX), as an installed
trtbuild has it; else the environment's setting (this workplace: PYTHONDONTWRITEBYTECODE=1), and
the script says whether the checkout has .pyc files of its own.
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
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import TINY_CONFIG  # noqa: E402

# The class the config names, with the forward signature the preflight checks; never run.
MODEL = '''
class TinyNet:
    """Stands in for tests/conftest.py's TinyNet when only planning: imports no torch."""

    def __init__(self, classes: int = 10):
        self.classes = classes

    def forward(self, input):
        raise NotImplementedError("planning only")
'''

# Peak RSS of the child, in KiB, printed by the child itself (RUSAGE_CHILDREN keeps the maximum over
# all children, so a small run after a big one would report the big one's peak).
RUNNER = textwrap.dedent(
    """
    import resource, sys
    from trtbuild.cli import main
    status = main(sys.argv[1:])
    print("peak_rss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
    sys.exit(status)
    """
)


def spec(cells: int) -> str:
    seeds = ", ".join(str(seed) for seed in range(cells // 2))
    # max_cells: above the default cap of 1,000, which a config must lift explicitly.
    return TINY_CONFIG + (
        f"matrix:\n  max_cells: {max(cells, 1000)}\n"
        f"  validate.seed: [{seeds}]\n  build.targets: [[SM89], [SM86]]\n"
    )


def plan_once(config: Path, env: dict[str, str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER, "plan", str(config)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        sys.exit(f"trtbuild plan {config.name} failed:\n{completed.stderr[-3000:]}")
    peak = int(completed.stderr.split("peak_rss_kib")[-1].split()[0])
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--pyc", action="store_true", help="with .pyc files (a private pycache)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="trtbuild-plan-bench-"))
    try:
        (scratch / "tinynet.py").write_text(MODEL)
        env = {**os.environ, "TRTBUILD_CACHE_DIR": str(scratch / "cache"), "PYTHONPATH": str(REPO)}
        if args.pyc:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(scratch / "pyc")
            pyc = ".pyc present (private PYTHONPYCACHEPREFIX, warmed)"
        else:
            own = "yes" if any(REPO.glob("trtbuild/**/__pycache__/*.pyc")) else "no"
            pyc = f"PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '')}, own .pyc: {own}"
        print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs; {pyc}")
        print(f"{'cells':>7}{'wall s':>9}{'CPU s':>9}{'peak RSS':>11}{'CPU/cell':>11}{'marginal/cell':>15}")
        previous: tuple[int, float] | None = None
        for cells in args.sizes:
            config = scratch / f"cells{cells}.yaml"
            config.write_text(spec(cells))
            plan_once(config, env)  # warm-up: the file cache, and the schema-validated marker
            runs = [plan_once(config, env) for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            peak = max(r[2] for r in runs)
            marginal = (
                "" if previous is None else f"{(cpu - previous[1]) / (cells - previous[0]) * 1e3:10.3f} ms"
            )
            per_cell = f"{cpu / cells * 1e3:8.3f} ms"
            print(f"{cells:7d}{wall:9.3f}{cpu:9.3f}{peak / 1024:8.0f} MiB{per_cell}{marginal:>15}")
            previous = (cells, cpu)
        print(f"load average at end: {os.getloadavg()}; target: 1,000 cells <= 1.0 s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
