"""Crash safety of publishing to a shared-folder remote (issue 14: "a truncated upload is never
visible to readers"), the CI subset: kill -9 a publishing run of the tiny model as its first upload
appears in the remote's tmp/, and as its 4th action entry (of 7) appears. Then no reader may see an
entry whose blobs are missing or partial, every entry the writer recorded locally must be on the
remote, and another clone's run against it must succeed with the undisturbed run's keys
(tests/e2e/remote_kill_points.py says what is checked). bench/remote_kill_points.py runs more
points on WideNet's 8 MB blobs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_CONFIG
from tests.e2e.remote_kill_points import after_entries, after_upload, remote_kill_points

pytestmark = pytest.mark.slow


def test_kill_9_while_publishing_never_shows_readers_a_partial_entry(tmp_path: Path) -> None:
    points = [("upload 1", after_upload(1)), ("entry 4", after_entries(4))]
    _, kills = remote_kill_points(tmp_path, TINY_CONFIG, points, random_points=0, seed=14)
    assert [f"{kill.how}: {problem}" for kill in kills for problem in kill.problems] == []
    # The kills landed while publishing: some, not all, of the 7 entries were on the remote.
    assert any(0 < kill.published < 7 for kill in kills), [(k.how, k.published) for k in kills]
