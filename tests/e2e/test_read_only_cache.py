"""Defect 9 of issue 13: a read-only cache, as CI jobs that consume a shared cache see it.

On 7722d02, "an empty read-only dir gives 'internal error: OSError … locks'; a populated read-only
cache materialises every output and then exits 1 ('cannot record GC root')". Root ignores file
modes, so the cache is made read-only for real: bind-mounted read-only onto itself in a private
mount namespace (`unshare --mount`) that only the trtbuild process under test sees."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Project

pytestmark = pytest.mark.slow

READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def _can_mount_read_only() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY, "/tmp", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


needs_mount = pytest.mark.skipif(
    not _can_mount_read_only(),
    reason="needs unshare and mount (root, or CAP_SYS_ADMIN) for a read-only mount",
)


def _run_read_only(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return _read_only(project, "run", str(project.config), "--out", str(project.out), *args)


def _read_only(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(project.cache), "PYTHONPATH": str(REPO)}
    trtbuild = [sys.executable, "-m", "trtbuild", *args]
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY, str(project.cache)]
    return subprocess.run(
        [*command, *trtbuild], cwd=project.root, env=env, capture_output=True, text=True, timeout=600
    )


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root`: (size, mtime in ns), to show nothing was written."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


@needs_mount
def test_an_empty_read_only_cache_is_a_clear_error(tiny_project: Project) -> None:
    tiny_project.cache.mkdir()
    completed = _run_read_only(tiny_project)
    assert completed.returncode == 2, completed.stderr
    assert "internal error" not in completed.stderr and "Traceback" not in completed.stderr
    assert (
        f"the cache {tiny_project.cache} is read-only and empty: there is nothing to read" in completed.stderr
    )
    assert "--cache-dir" in completed.stderr
    assert list(tiny_project.cache.iterdir()) == []


@needs_mount
def test_a_filled_read_only_cache_serves_a_run_and_is_not_written(warm_project: Project) -> None:
    warm_project.run_json()  # the trusted builder fills the cache
    # Its GC roots name its own runs (it ran more configs): this run's keys have none yet.
    shutil.rmtree(warm_project.cache / "roots")
    before = _tree(warm_project.cache)
    completed = _run_read_only(warm_project)
    assert completed.returncode == 0, completed.stderr
    assert (
        "is read-only: every task was cached; nothing was written to it"
        in completed.stdout + completed.stderr
    )
    # The stat cache is read as it is (immutable), not reported unusable on every run.
    assert "stat cache" not in completed.stderr, completed.stderr
    assert sorted(p.name for p in (warm_project.out / "tiny" / "fp32").iterdir()) == [
        "engine.json",
        "model.engine",
        "model.onnx",
        "precision.json",
        "validation.json",
    ]
    assert _tree(warm_project.cache) == before


@needs_mount
def test_a_read_only_cache_without_a_task_names_it(warm_project: Project) -> None:
    warm_project.run_json()
    warm_project.edit_config("atol: 1.0e-4", "atol: 2.0e-4")  # the validate task's key changes
    before = _tree(warm_project.cache)
    completed = _run_read_only(warm_project)
    assert completed.returncode == 1, completed.stderr
    assert "internal error" not in completed.stderr
    assert "is read-only; cannot build tiny/fp32/validate (1 task(s) not in it)" in completed.stderr
    assert _tree(warm_project.cache) == before


@needs_mount
@pytest.mark.parametrize("args", [(), ("--dry-run",)], ids=["gc", "gc --dry-run"])
def test_gc_on_a_read_only_cache_says_so(tiny_project: Project, args: tuple[str, ...]) -> None:
    """Before: "internal error: OSError: [Errno 30] Read-only file system: '.../locks/gc.lock'"."""
    tiny_project.cache.mkdir()
    completed = _read_only(tiny_project, "gc", *args)
    assert completed.returncode == 1, completed.stderr
    assert "internal error" not in completed.stderr and "Traceback" not in completed.stderr
    assert f"the cache {tiny_project.cache} is read-only: gc can free nothing" in completed.stderr
    assert list(tiny_project.cache.iterdir()) == []


@needs_mount
def test_fsck_repair_on_a_read_only_cache_names_what_it_could_not_remove(warm_project: Project) -> None:
    """Before: "internal error: OSError: [Errno 30] Read-only file system: '.../cas/..'"."""
    warm_project.run_json()
    blob = next(p for p in (warm_project.cache / "cas").glob("*/*") if p.stat().st_size < 4096)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes() + b" ")
    completed = _read_only(warm_project, "fsck", "--repair")
    assert completed.returncode == 1, completed.stderr
    assert "internal error" not in completed.stderr and "Traceback" not in completed.stderr
    assert f"bad: {blob}: " in completed.stderr and "(not removed: Read-only file system)" in completed.stderr
    assert "could not be removed: run `trtbuild fsck --repair` where" in completed.stderr
    assert blob.exists()
