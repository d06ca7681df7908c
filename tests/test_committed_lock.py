"""configs/resnet.lock is committed and true: CI plans the example against it on an empty cache.

Any commit that changes key material (a task kind's params or version, the key scheme, hashing, a
pinned tool version in constraints.txt) must regenerate the lock in the same commit (`trtbuild run
configs/resnet.yaml`); this test fails, listing each difference, when it did not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

CONFIG = REPO / "configs" / "resnet.yaml"
LOCK = CONFIG.with_suffix(".lock")


def test_the_committed_lock_agrees_with_the_plan_on_an_empty_cache(tmp_path: Path) -> None:
    before = LOCK.read_bytes()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "trtbuild",
            "plan",
            "--locked",
            "--json",
            str(CONFIG),
            "--cache-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    document = json.loads(completed.stdout)
    assert document["lock"]["differences"] == []
    assert LOCK.read_bytes() == before  # --locked never writes the lock


def test_the_lock_is_tracked_by_git() -> None:
    """Engines, ONNX files and caches stay out of git (.gitignore); the lock goes in."""
    completed = subprocess.run(
        ["git", "ls-files", "--error-unmatch", str(LOCK.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if "not a git repository" in completed.stderr:
        return  # an unpacked source archive: nothing to check
    assert completed.returncode == 0, completed.stderr
