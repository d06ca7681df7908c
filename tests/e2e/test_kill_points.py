"""Kill -9 at seeded random points of a cold run (done-when item 2 of issue 13), the CI subset: 10
points on the tiny model, each followed by a run that must succeed and leave the cache, the outputs
and the lock consistent, with nothing left behind (tests/e2e/kill_points.py says what is checked).
`bench/kill_points.py` runs 50 or more."""

from __future__ import annotations

import pytest

from tests.conftest import Project
from tests.e2e.kill_points import kill_points

pytestmark = pytest.mark.slow


def test_kill_9_at_10_seeded_points_loses_and_leaves_nothing(tiny_project: Project) -> None:
    _, points = kill_points(tiny_project, count=10, seed=13)
    problems = [f"killed at {p.at:.2f} s ({p.landed}): {problem}" for p in points for problem in p.problems]
    assert problems == []
