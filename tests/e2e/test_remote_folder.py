"""Done-when item 2 of issue 14: a `file://` remote shared by two trtbuild processes running at once.

Two clones of the tiny project at different paths, each with its own local cache, are started
together against one empty shared folder (the real CLI, `--json`): both succeed with equal locks,
the folder is consistent afterwards (tests/e2e/remote_folder.py: remote_problems) with nothing left
in its tmp/, and a third clone with an empty local cache is served entirely from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.remote_folder import (
    clone,
    lock_of,
    remote_entries,
    remote_leftovers,
    remote_problems,
    run,
    start,
    states,
)

pytestmark = pytest.mark.slow


def test_two_processes_share_a_folder_and_a_third_is_served_from_it(tmp_path: Path) -> None:
    remote = tmp_path / "shared"
    remote.mkdir()
    first, second = clone(tmp_path, "first"), clone(tmp_path / "elsewhere", "second")
    # One publishes from one slot, the other from two threads at once (-j 2): one test, both ways.
    running = [start(first, remote, "-j", "1"), start(second, remote, "-j", "2")]
    outputs = [process.communicate(timeout=600) for process in running]
    for process, (_, stderr) in zip(running, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr and "warning" not in stderr.lower(), stderr
    assert lock_of(first) == lock_of(second)
    assert remote_problems(remote) == []
    assert remote_leftovers(remote) == []
    keys = {entry["key"] for entry in lock_of(first)["tasks"].values()}  # type: ignore[attr-defined]
    assert remote_entries(remote) == keys  # every task published, and nothing else

    third = clone(tmp_path / "third-place", "third")
    served = run(third, remote, "-j", "2")
    assert served.returncode == 0, served.stderr
    assert set(states(served).values()) == {"cached"}, served.stdout
    notices = json.loads(served.stdout)["notices"]
    assert any(f"{len(keys)} result(s) fetched" in notice for notice in notices), notices
    assert lock_of(third) == lock_of(first)
