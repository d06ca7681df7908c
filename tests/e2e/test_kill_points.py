"""Kill -9 during a cold run (done-when item 2 of issue 13), the CI subset: one point in each phase
of a run of the tiny model (tests/e2e/kill_points.py: PHASE_POINTS, from start-up to after the
lock, and why these), each followed by a run that must succeed and leave the cache, the outputs and the lock
consistent, with nothing left behind (kill_points.py says what is checked). `bench/kill_points.py`
runs 50 or more points at seeded times over the whole run, with the same checks."""

from __future__ import annotations

import pytest

from tests.conftest import Project
from tests.e2e.kill_points import PHASE_POINTS, phase_points

pytestmark = pytest.mark.slow


def test_kill_9_once_in_each_phase_of_a_cold_run_loses_and_leaves_nothing(tiny_project: Project) -> None:
    reference, points = phase_points(tiny_project, seed=13)
    problems = [
        f"killed at {p.at:.2f} s (aimed at {p.aimed}, landed in {p.landed}): {problem}"
        for p in points
        for problem in p.problems
    ]
    assert problems == [], (problems, reference.appeared)
    landed = [(point.aimed, point.landed) for point in points]
    assert landed == [(phase, phase) for phase, _ in PHASE_POINTS], (landed, reference.appeared)
