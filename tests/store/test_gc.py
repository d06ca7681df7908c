"""Garbage collection: what lock files and recent runs reference stays, the rest is freed (real files)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import pytest

from trtbuild.cli import gc as gc_command
from trtbuild.errors import StoreError
from trtbuild.store import ActionResult, FileDigest, Store
from trtbuild.store import gc as gc_module
from trtbuild.store.gc import GcReport, collect_garbage
from trtbuild.store.roots import lock_root_name, run_root_name

DAY = 86400.0
A, B, C, D, E = (f"{c}{c}" * 32 for c in "abcde")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def put(store: Store, tmp_path: Path, key: str, **files: bytes) -> dict[str, FileDigest]:
    """Store each file as a blob and record them as the outputs of action ``key``."""
    outputs: dict[str, FileDigest] = {}
    for name, data in files.items():
        src = tmp_path / "src" / f"{key[:8]}-{name}"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(data)
        outputs[name] = store.put_file(src)
    store.put_action(key, ActionResult(outputs=outputs, meta={}))
    return outputs


def age_everything(store: Store, seconds: float = 2 * DAY) -> None:
    """Make every action entry and blob look ``seconds`` old, i.e. outside gc's grace period."""
    when = time.time() - seconds
    for top in ("ac", "cas"):
        for path in (store.root / top).rglob("*"):
            if path.is_file():
                os.utime(path, (when, when))


def write_lock(path: Path, *keys: str, lock_format: int = 2) -> Path:
    """A lock naming `keys`, in `lock_format` (1 spelt its format `version`, 2 `format_version`)."""
    tasks = {f"task-{i}": {"key": key, "params": {}} for i, key in enumerate(keys)}
    spelling = "version" if lock_format == 1 else "format_version"
    path.write_text(json.dumps({spelling: lock_format, "tasks": tasks}, indent=2))
    return path


def add_lock_root(store: Store, lock: Path, *keys: str) -> None:
    store.add_root(lock_root_name(lock), keys, lock_path=lock)


def add_run_root(store: Store, keys: list[str], age_days: float) -> str:
    """A run root whose recorded time is ``age_days`` ago (what an old run would have left)."""
    name = run_root_name(keys)
    store.add_root(name, keys)
    path = store.root / "roots" / f"{name}.json"
    doc = json.loads(path.read_text())
    doc["time"] = time.time() - age_days * DAY
    path.write_text(json.dumps(doc))
    return name


def gc(
    store: Store,
    *,
    keep_last: int = 0,
    max_age_days: float | None = None,
    grace_seconds: float = 3600,
    dry_run: bool = False,
) -> GcReport:
    """Collect, by default keeping no run, so each test states what it keeps."""
    return collect_garbage(
        store, keep_last=keep_last, max_age_days=max_age_days, grace_seconds=grace_seconds, dry_run=dry_run
    )


def has_action(store: Store, key: str) -> bool:
    return (store.root / "ac" / key[:2] / f"{key}.json").exists()


def snapshot(store: Store) -> dict[str, tuple[int, int]]:
    """Every file under the store except locks/ (the gc lock file itself), with size and mtime."""
    files: dict[str, tuple[int, int]] = {}
    for path in store.root.rglob("*"):
        rel = path.relative_to(store.root)
        if rel.parts[0] != "locks" and not path.is_dir():
            st = path.lstat()
            files[str(rel)] = (st.st_size, st.st_mtime_ns)
    return files


# -- the acceptance test ------------------------------------------------------------------------------
def test_keeps_everything_the_lock_needs_and_frees_the_rest(store: Store, tmp_path: Path) -> None:
    a = put(store, tmp_path, A, onnx=b"graph A", shared=b"shared weights")
    b = put(store, tmp_path, B, engine=b"engine B")
    c = put(store, tmp_path, C, engine=b"engine C, not in the lock", shared=b"shared weights")
    loose = tmp_path / "loose"
    loose.write_bytes(b"a blob no entry names")
    loose_digest = store.put_file(loose)
    lock = write_lock(tmp_path / "tiny.lock", A, B)
    add_lock_root(store, lock, A, B)
    age_everything(store)
    entry_c_size = (store.root / "ac" / C[:2] / f"{C}.json").stat().st_size

    report = gc(store)

    assert store.get_action(A) == ActionResult(outputs=a, meta={})
    assert store.get_action(B) == ActionResult(outputs=b, meta={})
    assert not has_action(store, C)
    assert store.has_blob(c["shared"].hash), "a blob the lock's entries share with a freed one stays"
    assert not store.has_blob(c["engine"].hash)
    assert not store.has_blob(loose_digest.hash)
    assert (report.actions_removed, report.actions_kept) == (1, 2)
    assert (report.blobs_removed, report.blobs_kept) == (2, 3)
    assert report.bytes_freed == entry_c_size + c["engine"].size + loose_digest.size
    assert (report.locks_kept, report.runs_kept, report.roots_dropped) == (1, 0, [])
    assert gc(store).actions_removed == 0, "a second collection finds nothing more to free"


# -- runs: keep-last and max-age ----------------------------------------------------------------------
def test_keep_last_keeps_the_newest_runs(store: Store, tmp_path: Path) -> None:
    keys = [A, B, C, D, E]
    names = []
    for age, key in enumerate(keys, start=1):
        put(store, tmp_path, key, out=key.encode())
        names.append(add_run_root(store, [key], age_days=age))
    age_everything(store)

    report = gc(store, keep_last=2)

    assert [has_action(store, k) for k in keys] == [True, True, False, False, False]
    assert report.runs_kept == 2
    assert sorted(report.roots_dropped) == sorted(names[2:])
    assert sorted(p.stem for p in (store.root / "roots").iterdir()) == sorted(names[:2])


def test_max_age_keeps_recent_runs(store: Store, tmp_path: Path) -> None:
    for key, age in ((A, 1), (B, 10), (C, 20)):
        put(store, tmp_path, key, out=key.encode())
        add_run_root(store, [key], age_days=age)
    age_everything(store)

    report = gc(store, keep_last=0, max_age_days=14)

    assert [has_action(store, k) for k in (A, B, C)] == [True, True, False]
    assert (report.runs_kept, len(report.roots_dropped)) == (2, 1)


def test_keep_last_or_max_age_either_keeps_a_run(store: Store, tmp_path: Path) -> None:
    for key, age in ((A, 30), (B, 40), (C, 50)):
        put(store, tmp_path, key, out=key.encode())
        add_run_root(store, [key], age_days=age)
    age_everything(store)

    gc(store, keep_last=1, max_age_days=14)

    assert [has_action(store, k) for k in (A, B, C)] == [True, False, False]


# -- lock files: deleted or edited since their root was written ---------------------------------------
def test_a_deleted_lock_file_releases_its_entries(store: Store, tmp_path: Path) -> None:
    put(store, tmp_path, A, out=b"A")
    lock = write_lock(tmp_path / "gone.lock", A)
    add_lock_root(store, lock, A)
    age_everything(store)
    lock.unlink()

    report = gc(store)

    assert not has_action(store, A)
    assert report.roots_dropped == [lock_root_name(lock)]
    assert store.roots() == []


@pytest.mark.parametrize("lock_format", [1, 2])
def test_an_edited_lock_releases_the_tasks_it_dropped(store: Store, tmp_path: Path, lock_format: int) -> None:
    put(store, tmp_path, A, out=b"A")
    put(store, tmp_path, B, out=b"B")
    lock = write_lock(tmp_path / "tiny.lock", A, B, lock_format=lock_format)
    add_lock_root(store, lock, A, B)
    age_everything(store)
    write_lock(
        lock, A, lock_format=lock_format
    )  # e.g. `git checkout` of an older lock: the root still lists B

    report = gc(store)

    assert has_action(store, A)
    assert not has_action(store, B)
    assert report.locks_kept == 1


def test_a_lock_that_cannot_be_read_keeps_what_its_root_lists(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    put(store, tmp_path, A, out=b"A")
    lock = tmp_path / "conflicted.lock"
    add_lock_root(store, lock, A)
    lock.write_text("<<<<<<< HEAD\n{}\n=======\n")
    age_everything(store)

    with caplog.at_level(logging.WARNING):
        gc(store)

    assert has_action(store, A)
    assert "conflicted.lock" in caplog.text


# -- grace: a concurrent run has not written its root yet ----------------------------------------------
def test_recent_entries_and_blobs_are_spared(store: Store, tmp_path: Path) -> None:
    outputs = put(store, tmp_path, A, out=b"just built")
    loose = tmp_path / "loose"
    loose.write_bytes(b"just stored")
    loose_digest = store.put_file(loose)

    report = gc(store)

    assert has_action(store, A) and store.has_blob(outputs["out"].hash) and store.has_blob(loose_digest.hash)
    assert (report.actions_removed, report.blobs_removed) == (0, 0)
    assert gc(store, grace_seconds=0).blobs_removed == 2


def test_grace_is_measured_on_each_file(store: Store, tmp_path: Path) -> None:
    put(store, tmp_path, A, out=b"A")
    put(store, tmp_path, B, out=b"B")
    age_everything(store, 2 * 3600)
    recent = time.time() - 600
    os.utime(store.root / "ac" / B[:2] / f"{B}.json", (recent, recent))

    gc(store, grace_seconds=3600)

    assert not has_action(store, A)
    assert has_action(store, B), "modified 10 minutes ago, within the hour of grace"


def test_a_cache_hit_protects_an_old_entry(store: Store, tmp_path: Path) -> None:
    outputs = put(store, tmp_path, A, out=b"old but just used")
    age_everything(store)
    assert store.get_action(A) is not None  # a concurrent run finds it in the cache

    gc(store)

    assert has_action(store, A) and store.has_blob(outputs["out"].hash)


def test_storing_an_existing_blob_protects_it(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "engine"
    src.write_bytes(b"deterministic engine")
    digest = store.put_file(src)
    age_everything(store)
    store.put_file(src)  # a run re-produces it; its action entry is not written yet

    assert gc(store).blobs_removed == 0
    assert store.has_blob(digest.hash)


# -- dry run, temp leftovers, hard links ----------------------------------------------------------------
def test_dry_run_changes_nothing_and_reports_the_same(store: Store, tmp_path: Path) -> None:
    put(store, tmp_path, A, out=b"A")
    put(store, tmp_path, B, out=b"B")
    add_run_root(store, [A], age_days=30)
    lock = write_lock(tmp_path / "gone.lock", B)
    add_lock_root(store, lock, B)
    lock.unlink()
    age_everything(store)
    leftover = store.root / "tmp" / "export-dead"
    leftover.mkdir(parents=True)
    (leftover / "model.onnx").write_bytes(b"x" * 100)
    os.utime(leftover / "model.onnx", (time.time() - 2 * DAY,) * 2)
    os.utime(leftover, (time.time() - 2 * DAY,) * 2)
    before = snapshot(store)

    dry = gc(store, dry_run=True)

    assert snapshot(store) == before
    real = gc(store)
    assert dry.dry_run and not real.dry_run
    assert {**dry.to_json(), "dry_run": False} == real.to_json()
    removed = (real.actions_removed, real.blobs_removed, real.temp_removed, len(real.roots_dropped))
    assert removed == (2, 2, 1, 2)


def test_old_temp_leftovers_go_and_young_ones_stay(store: Store) -> None:
    tmp = store.root / "tmp"
    old_dir, busy_dir, old_file = tmp / "build-old", tmp / "build-busy", tmp / ".blob.1.ab.tmp"
    for d in (old_dir, busy_dir):
        (d / "out").mkdir(parents=True)
    old_file.write_bytes(b"12345")
    (busy_dir / "out" / "model.engine").write_bytes(b"being written")
    two_days_ago = time.time() - 2 * DAY
    for path in (old_dir / "out", old_dir, old_file, busy_dir / "out", busy_dir):
        os.utime(path, (two_days_ago, two_days_ago))

    report = gc(store)

    assert report.temp_removed == 2
    assert report.bytes_freed == 5
    assert sorted(p.name for p in tmp.iterdir()) == ["build-busy"], "a file written inside keeps it young"


def test_blobs_still_linked_from_build_dirs_are_not_counted_as_freed(store: Store, tmp_path: Path) -> None:
    outputs = put(store, tmp_path, A, engine=b"e" * 1000)
    store.materialize(outputs["engine"].hash, tmp_path / "build" / "model.engine")
    age_everything(store)

    report = gc(store)

    assert report.blobs_removed == 1
    assert report.bytes_still_linked == 1000
    assert report.bytes_freed < 1000  # just the action entry
    assert (tmp_path / "build" / "model.engine").read_bytes() == b"e" * 1000


def test_two_collections_do_not_interleave(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc_module, "LOCK_TIMEOUT_S", 0.05)
    with store.lock("gc"), pytest.raises(StoreError, match=r"timed out .* lock 'gc'"):
        gc(store)


# -- roots on disk ------------------------------------------------------------------------------------
def test_root_file_format_and_replacement(store: Store, tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    add_lock_root(store, lock, B, A, A)
    add_lock_root(store, lock, C)  # the lock was rewritten: its root is replaced, not added
    files = list((store.root / "roots").iterdir())
    assert [f.name for f in files] == [f"{lock_root_name(lock)}.json"]
    doc = json.loads(files[0].read_text())
    assert doc["version"] == 1 and doc["keys"] == [C] and doc["lock"] == str(lock)
    assert abs(doc["time"] - time.time()) < 60
    store.add_root("run-1-2", [B, A, B])
    run_doc = json.loads((store.root / "roots" / "run-1-2.json").read_text())
    assert run_doc["keys"] == [A, B] and run_doc["lock"] is None
    assert lock_root_name(lock).startswith("lock-") and len(lock_root_name(lock)) == 5 + 16
    assert [(r.name, r.keys, r.lock) for r in store.roots()] == [
        (lock_root_name(lock), frozenset({C}), lock),
        ("run-1-2", frozenset({A, B}), None),
    ]


def test_damaged_roots_are_skipped_with_a_warning(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    store.add_root("run-1-1", [A])
    (store.root / "roots" / "run-2-2.json").write_text('{"version": 1, "keys": "not a list"')
    with caplog.at_level(logging.WARNING):
        assert [r.name for r in store.roots()] == ["run-1-1"]
    assert "run-2-2.json" in caplog.text


def test_store_iteration_skips_stray_files(store: Store, tmp_path: Path) -> None:
    outputs = put(store, tmp_path, A, out=b"A")
    (store.root / "cas" / "zz").mkdir()
    (store.root / "cas" / "zz" / "notes.txt").write_text("not a blob")
    (store.root / "ac" / A[:2] / "README").write_text("not an entry")
    assert list(store.iter_action_keys()) == [A]
    assert [d for d, _, _ in store.iter_blobs()] == [outputs["out"].hash]
    assert store.remove_action(A, older_than=time.time() - 60) is None, "too recent to remove"
    assert store.remove_action(A) is not None and not has_action(store, A)


# -- the command ---------------------------------------------------------------------------------------
def run_command(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="trtbuild")
    gc_command.add_parser(parser.add_subparsers(dest="verb", required=True))
    args = parser.parse_args(["gc", *argv])
    status: int = args.handler(args)
    return status


def test_command_prints_what_it_freed(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    put(store, tmp_path, A, out=b"kept")
    put(store, tmp_path, B, out=b"freed")
    add_lock_root(store, write_lock(tmp_path / "tiny.lock", A), A)
    add_run_root(store, [], age_days=1)
    age_everything(store)

    assert run_command("--cache-dir", str(store.root), "--dry-run") == 0
    assert "would free" in capsys.readouterr().out
    assert has_action(store, B)

    assert run_command("--cache-dir", str(store.root)) == 0
    out = capsys.readouterr().out
    assert out.startswith("freed ")
    assert ": 1 action entry, 1 blob (kept 1 entry, 1 blob for 1 lock and 1 run)" in out
    assert not has_action(store, B)


def test_command_json_and_default_cache_dir(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRTBUILD_CACHE_DIR", str(store.root))
    put(store, tmp_path, A, out=b"A")
    age_everything(store)

    assert run_command("--json", "--keep-last", "0", "--max-age", "0") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cache_dir"] == str(store.root)
    assert (doc["actions_removed"], doc["blobs_removed"], doc["dry_run"]) == (1, 1, False)


def test_command_refuses_negative_limits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_command("--keep-last", "-1")
    assert exit_info.value.code == 2
    assert "must be 0 or more" in capsys.readouterr().err


def test_removes_toolchain_copies_unused_for_max_age_and_keeps_recent_ones(store: Store) -> None:
    """The build worker keeps TensorRT's packages under toolchains/, one copy per version and
    install, and touches the copy it uses: an old version's copy goes once unused for max_age."""
    old = store.toolchains_dir / "tensorrt_rtx-1.7.0-aaaa" / "ppp"
    recent = store.toolchains_dir / "tensorrt_rtx-1.7.1-bbbb" / "ppp"
    for folder in (old, recent):
        folder.mkdir(parents=True)
        (folder / "library.so").write_bytes(b"\0" * 64)
    month_ago = time.time() - 30 * 86400
    os.utime(old.parent, (month_ago, month_ago))
    dry = collect_garbage(store, max_age_days=14, dry_run=True)
    assert dry.toolchains_removed == 1 and old.exists()
    report = collect_garbage(store, max_age_days=14)
    assert report.toolchains_removed == 1
    assert not old.parent.exists() and (recent / "library.so").exists()


def test_work_dirs_go_by_their_owner_not_their_age(store: Store) -> None:
    # A dead process's work dir goes at once, however young; a live one's stays, however old.
    import signal
    import subprocess
    import sys

    holder = (
        "import os, signal, sys; from pathlib import Path; from trtbuild.store import Store\n"
        "with Store(Path(sys.argv[1])).temp_dir('build-') as work:\n"
        "    print(work, flush=True); os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    dead = subprocess.run(
        [sys.executable, "-c", holder, str(store.root)], capture_output=True, text=True, check=False
    )
    assert dead.returncode == -signal.SIGKILL
    dead_dir = Path(dead.stdout.strip())
    with store.temp_dir("build-") as live_dir:
        two_days_ago = time.time() - 2 * DAY
        os.utime(live_dir, (two_days_ago, two_days_ago))
        for path in live_dir.iterdir():
            os.utime(path, (two_days_ago, two_days_ago))
        report = gc(store)
        assert report.temp_removed == 1
        assert not dead_dir.exists()
        assert live_dir.is_dir()
