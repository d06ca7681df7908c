"""Run roots are named by their keys and bounded; an unchanged lock root is not rewritten."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.store.test_gc import A, B, C, age_everything, gc, has_action, put, write_lock
from trtbuild.store import Store
from trtbuild.store.roots import RUN_ROOT_REFRESH_S, RUN_ROOTS_KEPT, lock_root_name


def files(store: Store) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (store.root / "roots").glob("*.json")}


def test_a_run_of_the_same_keys_writes_no_new_root(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    assert store.add_run_root([A, B]) is True
    before = files(store)
    assert store.add_run_root([B, A]) is False
    assert files(store) == before
    assert store.add_run_root([A]) is True
    assert len(files(store)) == 2


def test_a_stale_run_root_is_refreshed(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    store.add_run_root([A])
    (path,) = (store.root / "roots").glob("run-*.json")
    doc = json.loads(path.read_text())
    doc["time"] = time.time() - RUN_ROOT_REFRESH_S - 60
    path.write_text(json.dumps(doc))
    assert store.add_run_root([A]) is True
    assert time.time() - json.loads(path.read_text())["time"] < 60


def test_run_roots_are_bounded_and_the_newest_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    keys = [f"{i:064x}" for i in range(RUN_ROOTS_KEPT + 5)]
    for key in keys:
        store.add_run_root([key])
    kept = {key for root in store.roots() for key in root.keys}
    assert len(kept) == RUN_ROOTS_KEPT
    assert keys[-1] in kept and keys[0] not in kept


def test_gc_keeps_what_the_newest_run_used(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    put(store, tmp_path, A, onnx=b"graph A")
    put(store, tmp_path, B, onnx=b"graph B")
    store.add_run_root([A])
    age_everything(store)
    gc(store, keep_last=1)
    assert has_action(store, A) and not has_action(store, B)


def test_an_unchanged_lock_root_is_not_rewritten(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    lock = write_lock(tmp_path / "tiny.lock", A, B)
    store.add_root(lock_root_name(lock), [A, B], lock_path=lock)
    before = files(store)
    store.add_root(lock_root_name(lock), [B, A], lock_path=lock)
    assert files(store) == before
    store.add_root(lock_root_name(lock), [A, C], lock_path=lock)
    assert files(store) != before


def test_a_run_of_the_same_keys_after_another_run_counts_as_the_newest(tmp_path: Path) -> None:
    """`gc --keep-last 1` keeps the run used last: a no-op of A after a run of B must count as newer
    than B, although A's root already exists and is less than a day old."""
    store = Store(tmp_path / "cache")
    put(store, tmp_path, A, onnx=b"graph A")
    put(store, tmp_path, B, onnx=b"graph B")
    store.add_run_root([A])
    time.sleep(0.05)  # past the filesystem's timestamp granularity
    store.add_run_root([B])
    time.sleep(0.05)
    assert store.add_run_root([A]) is True  # no longer the newest: written again
    before = files(store)
    assert store.add_run_root([A]) is False  # the newest: left alone
    assert files(store) == before
    age_everything(store)
    gc(store, keep_last=1)
    assert has_action(store, A) and not has_action(store, B)
