"""Fault benchmark: kill -9 at N seeded random points of a cold run of the tiny model (default 50),
each followed by a run that must succeed with 0 corrupt blobs or entries, 0 wrong outputs, a lock
with the undisturbed run's keys and nothing left in the cache's tmp/ or as temp files (what is
checked: tests/e2e/kill_points.py). Prints where each kill landed and the totals.

Usage: python bench/kill_points.py [--points N] [--seed S]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import TINY_CONFIG, TINY_MODEL, Project
from tests.e2e.kill_points import kill_points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2026)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trtbuild-kill-") as scratch:
        root = Path(scratch) / "project"
        root.mkdir()
        (root / "tinynet.py").write_text(TINY_MODEL)
        (root / "tiny.yaml").write_text(TINY_CONFIG)
        project = Project(root, root / "tiny.yaml", Path(scratch) / "cache", root / "build")
        started = time.monotonic()
        seconds, points = kill_points(project, arguments.points, arguments.seed)
        wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    for point in points:
        print(f"{point.at:6.2f} s  {point.landed:13}  {'; '.join(point.problems) or 'ok'}")
    failed = [point for point in points if point.problems]
    print(f"undisturbed cold run: {seconds:.2f} s wall")
    print(f"kill points by stage: {dict(Counter(point.landed for point in points))}")
    print(
        f"{len(points)} kill -9 points (seed {arguments.seed}): {len(failed)} with problems; "
        f"{wall:.0f} s wall, {usage.ru_utime + usage.ru_stime:.0f} CPU s in child processes"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
