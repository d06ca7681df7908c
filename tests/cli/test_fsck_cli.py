"""`trtbuild fsck` on a cache that is not there: a usage error, not "checked 0 blobs" and exit 0
(which a mistyped --cache-dir in CI would take for a clean cache), and nothing created there."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def test_fsck_of_a_missing_cache_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-cache"
    completed = run_cli("fsck", cwd=tmp_path, cache=missing)
    assert completed.returncode == 2, completed.stderr
    assert f"no cache at {missing}" in completed.stderr and "Traceback" not in completed.stderr
    assert not missing.exists()
    present = tmp_path / "cache"
    present.mkdir()
    assert run_cli("fsck", cwd=tmp_path, cache=present).returncode == 0
