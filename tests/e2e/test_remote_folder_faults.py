"""Faults of a shared-folder (`file://`) remote cache (issue 14): each degrades to a local build with
one warning, exit 0, and never hands a reader a wrong result.

- the folder does not exist (an unmounted share): it is not created locally;
- a damaged action entry (a flipped byte, or a FIFO in its place): a miss naming the task, which
  runs and republishes it;
- an entry whose blob is missing: the same;
- a blob that does not hash to its name (a flipped byte): detected, the task runs; a writer
  republishes it (and removes temp files killed writers left in tmp/ over an hour ago), a read-only
  consumer (`--remote-read-only`) writes nothing;
- a folder this user cannot write (a read-only bind mount in a private mount namespace, as in
  test_read_only_cache.py: chmod does not stop root): what it holds is still read, the task it
  lacks is built here, and publishing it fails with one warning.

One clone fills a remote once (`filled`); each test works on its own copy of it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.e2e.remote_folder import (
    clone,
    command,
    environment,
    lock_of,
    remote_entries,
    remote_leftovers,
    remote_problems,
    run,
    states,
    warnings,
)
from tests.e2e.test_read_only_cache import READ_ONLY, needs_mount

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A remote filled by one clone's cold run, and that run's key per task."""
    base = tmp_path_factory.mktemp("filled")
    remote = base / "shared"
    remote.mkdir()
    builder = clone(base, "builder")
    completed = run(builder, remote)
    assert completed.returncode == 0, completed.stderr
    tasks: dict[str, dict[str, str]] = lock_of(builder)["tasks"]  # type: ignore[assignment]
    keys = {task: entry["key"] for task, entry in tasks.items()}
    assert remote_entries(remote) == set(keys.values())
    return remote, keys


def _copy(filled: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    remote, keys = filled
    shutil.copytree(remote, tmp_path / "shared")
    return tmp_path / "shared", keys


def _entry(remote: Path, key: str) -> Path:
    return remote / "ac" / key[:2] / f"{key}.json"


def _only(completed: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit 0 and exactly one warning, which says all of `phrases`."""
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    said = warnings(completed)
    assert len(said) == 1, completed.stderr
    for phrase in phrases:
        assert phrase in said[0], said[0]


def test_a_missing_shared_folder_is_not_created_and_the_run_builds_locally(tmp_path: Path) -> None:
    share = tmp_path / "mnt" / "team-cache"  # not mounted: neither it nor its parent exists
    completed = run(clone(tmp_path, "user"), share)
    _only(completed, f"remote cache file://{share} cannot be used", "does not exist (not mounted?)")
    assert set(states(completed).values()) == {"ran"}
    assert not share.exists() and not share.parent.exists()


def test_a_damaged_remote_entry_is_a_miss_naming_the_task_and_is_republished(
    filled: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    remote, keys = _copy(filled, tmp_path)
    _flip_a_byte(_entry(remote, keys["tiny/fp32/validate"]))
    assert remote_problems(remote) != []

    completed = run(clone(tmp_path, "user"), remote)
    _only(completed, "tiny/fp32/validate: the remote cache's entry is damaged", "the task runs")
    ran = {task for task, state in states(completed).items() if state == "ran"}
    assert ran == {"tiny/fp32/validate"}
    assert remote_problems(remote) == []  # republished whole
    assert remote_leftovers(remote) == []


def test_a_remote_entry_whose_blob_is_missing_is_a_miss_and_is_republished(
    filled: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    remote, keys = _copy(filled, tmp_path)
    entry = _entry(remote, keys["tiny/simplify"])
    for blob in remote.glob("cas/*/*"):
        if blob.name in entry.read_text():
            blob.unlink()
    assert any("blob is missing" in problem for problem in remote_problems(remote))

    completed = run(clone(tmp_path, "user"), remote)
    _only(completed, "tiny/simplify: the remote cache's blob for", "is missing", "the task runs here")
    ran = {task for task, state in states(completed).items() if state == "ran"}
    assert ran == {"tiny/simplify"}  # its output is the same graph: what follows is served
    assert remote_problems(remote) == []


def test_a_fifo_planted_as_a_remote_entry_is_damage_not_a_hang(
    filled: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Before: the run hung in open() until something wrote to the FIFO (the local store's entries
    are opened without blocking; the remote's were not)."""
    remote, keys = _copy(filled, tmp_path)
    entry = _entry(remote, keys["tiny/fp32/validate"])
    entry.unlink()
    os.mkfifo(entry)
    completed = run(clone(tmp_path, "user"), remote)
    _only(completed, "tiny/fp32/validate: the remote cache's entry is damaged (not a regular file)")
    assert {task for task, state in states(completed).items() if state == "ran"} == {"tiny/fp32/validate"}
    assert remote_problems(remote) == [] and entry.is_file()  # republished over it


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root`: its bytes and mtime, to show nothing was written."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "read-only"])
def test_a_corrupt_remote_blob_is_detected_and_the_task_runs(
    filled: tuple[Path, dict[str, str]], tmp_path: Path, read_only: bool
) -> None:
    remote, keys = _copy(filled, tmp_path)
    entry = _entry(remote, keys["tiny/simplify"])
    [blob] = [blob for blob in remote.glob("cas/*/*") if blob.name in entry.read_text()]
    _flip_a_byte(blob)
    # What killed writers left in tmp/: one two hours ago (abandoned), one just now (maybe in use).
    (remote / "tmp").mkdir(exist_ok=True)
    old, fresh = remote / "tmp" / ".x.1.aaaa.tmp", remote / "tmp" / ".y.2.bbbb.tmp"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    before = _snapshot(remote)

    completed = run(clone(tmp_path, "user"), remote, *(["--remote-read-only"] if read_only else []))
    _only(completed, "tiny/simplify: the remote cache's blob for", "does not hash to its name")
    assert {task for task, state in states(completed).items() if state == "ran"} == {"tiny/simplify"}
    if read_only:  # a consumer publishes nothing, not even the repair
        assert "where a writer builds it" in completed.stderr
        assert _snapshot(remote) == before
    else:  # the writer's result replaces the damaged copy, and it clears tmp/ of abandoned files
        assert remote_problems(remote) == []
        assert remote_leftovers(remote) == [fresh.name]


def test_a_writer_that_builds_a_task_replaces_its_damaged_blob_of_the_right_size(
    filled: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Before: the writer skipped uploading a blob the remote held with the right size, so its new
    entry named the damaged copy, and every read-only reader with a fresh cache rebuilt the task."""
    remote, keys = _copy(filled, tmp_path)
    entry = _entry(remote, keys["tiny/simplify"])
    [blob] = [blob for blob in remote.glob("cas/*/*") if blob.name in entry.read_text()]
    _flip_a_byte(blob)  # its size unchanged
    entry.unlink()  # so a writer builds the task (simplify: its bytes are the same each time)

    writer = run(clone(tmp_path, "writer"), remote)
    assert writer.returncode == 0 and warnings(writer) == [], writer.stderr
    assert {task for task, state in states(writer).items() if state == "ran"} == {"tiny/simplify"}
    assert entry.is_file() and blob.name in entry.read_text()  # the same blob, named again
    assert remote_problems(remote) == []  # and its bytes replaced

    reader = run(clone(tmp_path, "reader"), remote, "--remote-read-only")
    assert reader.returncode == 0 and warnings(reader) == [], reader.stderr
    assert set(states(reader).values()) == {"cached"}


def test_a_folder_at_a_blobs_path_is_replaced_and_the_remote_stays_up(
    filled: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Before: publishing over it failed (a file cannot be renamed onto a folder), which took the
    remote down for the run: a second warning, and the tasks after it no longer served."""
    remote, keys = _copy(filled, tmp_path)
    entry = _entry(remote, keys["tiny/simplify"])
    [blob] = [blob for blob in remote.glob("cas/*/*") if blob.name in entry.read_text()]
    blob.unlink()
    blob.mkdir()
    (blob / "something").write_bytes(b"not a blob")

    completed = run(clone(tmp_path, "user"), remote)
    _only(completed, "tiny/simplify: the remote cache's blob for", "does not hash to its name")
    assert {task for task, state in states(completed).items() if state == "ran"} == {"tiny/simplify"}
    assert blob.is_file() and remote_problems(remote) == []
    assert remote_leftovers(remote) == []


@needs_mount
def test_a_read_only_shared_folder_is_read_and_the_rest_built_locally_with_one_warning(
    filled: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    remote, keys = _copy(filled, tmp_path)
    _entry(remote, keys["tiny/probe"]).unlink()  # early: the tasks after it are still served
    before = sorted(str(path) for path in remote.rglob("*"))
    user = clone(tmp_path, "user")
    completed = _run_mounted(READ_ONLY, remote, user)
    _only(completed, f"remote cache file://{remote} cannot be written", "Read-only file system")
    assert "--remote-read-only" in completed.stderr  # what to say next time
    ran = {task for task, state in states(completed).items() if state == "ran"}
    assert ran == {"tiny/probe"}  # before: every task after it was built too, the remote dropped
    assert sorted(str(path) for path in remote.rglob("*")) == before


def _run_mounted(script: str, remote: Path, user: Project) -> subprocess.CompletedProcess[str]:
    """The user's run, with `script` mounting something on the remote folder in a private mount
    namespace first (so nothing is left mounted when it ends)."""
    mount = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(remote)]
    return subprocess.run(
        [*mount, *command(user, remote)],
        cwd=user.root,
        env=environment(user),
        capture_output=True,
        text=True,
        timeout=600,
    )


# A full share, for real: a 200 KiB tmpfs mounted on the remote folder in a private mount namespace
# (the tiny engine is 290 KB, so its upload fails part-way); its contents are copied out beside it
# before the namespace ends.
FULL_SHARE = (
    'mount -t tmpfs -o size=200k tmpfs "$0" || exit 97; "$@"; status=$?; '
    'mkdir "$0.after" && cp -a "$0/." "$0.after/"; exit $status'
)


@needs_mount
def test_a_full_shared_folder_leaves_no_partial_upload(tmp_path: Path) -> None:
    remote = tmp_path / "shared"
    remote.mkdir()
    user = clone(tmp_path, "user")
    completed = _run_mounted(FULL_SHARE, remote, user)
    _only(completed, f"remote cache file://{remote} cannot be written", "No space left on device")
    assert set(states(completed).values()) == {"ran"}
    after = tmp_path / "shared.after"
    assert remote_entries(after), "nothing was published before the share filled up"
    assert remote_problems(after) == []
    assert remote_leftovers(after) == []  # the partial upload is removed, not left in tmp/
