"""A FIFO where the cache keeps a file (an action entry, a GC root, a remembered config, a blob, an
output under build/) is damage like any other: a miss or a finding, never a hang.

Before, open() of each blocked until something wrote to the FIFO: `trtbuild plan`, `run` and
`fsck` hung on an entry, `run` and `gc` on a root, `plan` on a remembered config, `fsck CONFIG` on
an output. Each check runs in a daemon thread, so a regression fails the test instead of hanging it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trtbuild.store import ActionResult, Store
from trtbuild.store.hashing import digest_file

KEY = "3f" + "a1" * 31


def within(seconds: float, call: Callable[[], Any]) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # handed to the test below
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def fifo_at(path: Path) -> None:
    if path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def test_an_action_entry_that_is_a_fifo_is_a_miss_and_removed(store: Store) -> None:
    store.put_action(KEY, ActionResult(outputs={}, meta={}))
    entry = store.root / "ac" / KEY[:2] / f"{KEY}.json"
    fifo_at(entry)
    assert within(5, lambda: store.get_action(KEY)) is None
    assert not entry.exists()


def test_a_gc_root_that_is_a_fifo_is_skipped(store: Store) -> None:
    store.add_run_root([KEY])
    (root,) = (store.root / "roots").glob("*.json")
    fifo_at(root)
    assert within(5, store.roots) == []
    assert within(5, lambda: store.add_run_root([KEY])) is True  # written again, as a file
    assert [r.keys for r in store.roots()] == [frozenset([KEY])]


def test_a_remembered_config_that_is_a_fifo_is_a_miss(store: Store) -> None:
    parsed = store.parsed_configs()
    digest = "ab" * 32
    parsed.put(digest, b"{}")
    fifo_at(store.root / "validated" / digest[:2] / f"{digest}.json")
    assert within(5, lambda: parsed.get(digest)) is None


def test_a_blob_or_output_that_is_a_fifo_is_unreadable_not_a_hang(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "blob"
    source.write_bytes(b"content")
    digest = store.put_file(source)
    fifo_at(store.blob_path(digest.hash))
    with pytest.raises(Exception, match=r"not a regular file"):
        within(5, lambda: store.read_verified(digest.hash))
    output = tmp_path / "build" / "model.engine"
    fifo_at(output)
    with pytest.raises(OSError, match="not a regular file"):
        within(5, lambda: digest_file(output))


def test_an_action_entry_that_is_a_directory_is_removed_and_written_again(store: Store) -> None:
    """Before: the folder stayed ("removed" said the warning), and every run failed the task with
    "StoreError: cannot record action ...: Is a directory"."""
    store.put_action(KEY, ActionResult(outputs={}, meta={}))
    entry = store.root / "ac" / KEY[:2] / f"{KEY}.json"
    entry.unlink()
    (entry / "inside").mkdir(parents=True)
    assert store.get_action(KEY) is None
    assert not entry.exists()
    store.put_action(KEY, ActionResult(outputs={}, meta={"again": True}))
    assert store.get_action(KEY) == ActionResult(outputs={}, meta={"again": True})
