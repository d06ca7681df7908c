"""Fault benchmark: kill -9 a trtbuild publishing to a shared-folder (file://) remote cache, at many
points, and check after each that no reader could see an entry whose blobs are missing or partial
and that another clone's run against the remote succeeds with the undisturbed run's keys (what is
checked: tests/e2e/remote_kill_points.py). WideNet by default (8 MB graphs and engine, so a kill can
land inside an upload): kills after each action entry appears, after each of the first uploads seen
in the remote's tmp/, and at seeded random delays. Prints each point, then the totals.

Usage: python bench/remote_kill_points.py [--random N] [--uploads N] [--seed S] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import REPO, TINY_CONFIG
from tests.e2e.remote_folder import WIDE_CONFIG
from tests.e2e.remote_kill_points import Trigger, after_entries, after_upload, remote_kill_points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=8, help="kills at seeded random delays")
    parser.add_argument("--uploads", type=int, default=6, help="kills after the 1st..Nth upload seen")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--tiny", action="store_true", help="the tiny model instead of WideNet")
    args = parser.parse_args()
    config = TINY_CONFIG if args.tiny else WIDE_CONFIG
    points: list[tuple[str, Trigger]] = [(f"entry {k}", after_entries(k)) for k in range(1, 7)]
    points += [(f"upload {k}", after_upload(k)) for k in range(1, args.uploads + 1)]
    with tempfile.TemporaryDirectory(prefix="trtbuild-remote-kill-") as scratch:
        started = time.monotonic()
        seconds, kills = remote_kill_points(Path(scratch), config, points, args.random, args.seed)
        wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{'point':16} {'entries':>7} {'tmp left':>8}  outcome")
    for kill in kills:
        print(f"{kill.how:16} {kill.published:7} {kill.leftovers:8}  {'; '.join(kill.problems) or 'ok'}")
    failed = [kill for kill in kills if kill.problems]
    partial = sum(1 for kill in kills if 0 < kill.published < 7)
    model = "tiny" if args.tiny else "WideNet (8 MB blobs)"
    print(f"model: {model}; undisturbed cold run {seconds:.2f} s wall")
    print(
        f"{len(kills)} kill -9 points (seed {args.seed}): {len(failed)} with problems; "
        f"{partial} killed with some but not all 7 entries published; "
        f"{sum(1 for kill in kills if kill.leftovers)} left a temp file in the remote's tmp/ (mid-upload)"
    )
    print(
        f"{wall:.0f} s wall, {usage.ru_utime + usage.ru_stime:.0f} CPU s in child processes; "
        f"load average at the end {os.getloadavg()[0]:.2f}; trtbuild .pyc files "
        f"{'present' if any((REPO / 'trtbuild').rglob('__pycache__')) else 'absent'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
