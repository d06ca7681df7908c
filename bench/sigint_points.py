"""Fault benchmark: SIGINT (`kill -INT`, trtbuild's process alone) at N seeded random moments of a
cold run of the tiny model, start-up included (a third of them in its first 0.6 s). Each must exit
130, within 0.5 s of the signal, without a traceback, leaving no process of its session and nothing
in the cache's tmp/ nor temp files. Prints each point and the totals.

Usage: python bench/sigint_points.py [--points N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import REPO, TINY_CONFIG, TINY_MODEL, session_processes


def interrupt_at(root: Path, cache: Path, at: float) -> tuple[int, float, int, bool]:
    """Exit status, seconds from signal to exit, leftovers (processes, temp files), traceback."""
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    run = subprocess.Popen(
        [sys.executable, "-m", "trtbuild", "run", "tiny.yaml"],
        cwd=root,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(at)
    signalled = time.monotonic()
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate()
    wall = time.monotonic() - signalled
    time.sleep(0.5)  # a worker notices a dead parent within 0.5 s
    scratch = list((cache / "tmp").glob("*")) if (cache / "tmp").is_dir() else []
    left = len(session_processes(run.pid)) + len(scratch)
    left += len(list(root.rglob("*.tmp")))
    return run.returncode, wall, left, "Traceback" in stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=30)
    parser.add_argument("--seed", type=int, default=9)
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="trtbuild-sigint-") as scratch:
        for index in range(arguments.points):
            root = Path(scratch) / f"p{index}"
            root.mkdir()
            (root / "tinynet.py").write_text(TINY_MODEL)
            (root / "tiny.yaml").write_text(TINY_CONFIG)
            at = rng.uniform(0.1, 0.6) if index % 3 == 0 else rng.uniform(0.6, 6.0)
            outcomes.append((at, *interrupt_at(root, Path(scratch) / f"cache{index}", at)))
    for at, status, wall, left, traceback in outcomes:
        print(f"{at:5.2f} s: exit {status}, {wall:.3f} s to exit, {left} left, traceback: {traceback}")
    bad = [o for o in outcomes if o[1] != 130 or o[2] > 0.5 or o[3] or o[4]]
    print(
        f"{len(outcomes)} SIGINTs (seed {arguments.seed}): "
        f"{sum(o[1] != 130 for o in outcomes)} not exit 130, "
        f"slowest {max(o[2] for o in outcomes):.3f} s, {sum(o[3] for o in outcomes)} left behind, "
        f"{sum(o[4] for o in outcomes)} tracebacks"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
