"""Several processes sharing one store: same blob, same action, same destination; and locks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trtbuild.errors import StoreError
from trtbuild.store import ActionResult, FileDigest, Store
from trtbuild.store.hashing import digest_bytes

REPO = Path(__file__).resolve().parents[2]
KEY = "ab" * 32


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed (exit {proc.returncode}):\n{out}\n{err}"
    return out


PUT_WORKER = """
import os, sys
from pathlib import Path
from trtbuild.store import ActionResult, Store

root, work, key, go = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
payload = bytes(range(256)) * (12 * 1024)  # 3 MiB, identical in every worker
store = Store(root)
work.mkdir(parents=True, exist_ok=True)
while not go.exists():
    pass
for i in range(15):
    src = work / f"out{i}.bin"
    src.write_bytes(payload)
    digest = store.put_file(src, move=(i % 2 == 0))
    store.put_action(key, ActionResult(outputs={"model.onnx": digest}, meta={"pid": os.getpid(), "i": i}))
    got = store.get_action(key)
    assert got is not None, "entry vanished"
    assert got.outputs["model.onnx"] == digest
    store.materialize(digest.hash, root.parent / "build" / "model.onnx")
    assert (root.parent / "build" / "model.onnx").read_bytes() == payload
print("ok")
"""


def test_concurrent_put_of_same_blob_and_action(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    go = tmp_path / "go"
    procs = [spawn(PUT_WORKER, str(root), str(tmp_path / f"w{n}"), KEY, str(go)) for n in range(6)]
    time.sleep(0.3)
    go.touch()
    for p in procs:
        assert finish(p).strip() == "ok"

    payload = bytes(range(256)) * (12 * 1024)
    digest = FileDigest(digest_bytes(payload), len(payload))
    store = Store(root)
    got = store.get_action(KEY)
    assert got is not None
    assert got.outputs == {"model.onnx": digest}
    assert store.verify_blob(digest.hash)
    assert [p for p in (root / "cas").rglob("*") if p.is_file()] == [store.blob_path(digest.hash)]
    assert list((root / "tmp").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["model.onnx"]


HOLD_WORKER = """
import sys, time
from pathlib import Path
from trtbuild.store import Store

root, ready, release = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
with Store(root).lock("engine-resnet50"):
    ready.touch()
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
print("released")
"""


def test_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    ready, release = tmp_path / "ready", tmp_path / "release"
    holder = spawn(HOLD_WORKER, str(root), str(ready), str(release))
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None, holder.communicate()
            assert time.monotonic() < deadline, "holder never took the lock"
            time.sleep(0.01)
        store = Store(root)
        start = time.monotonic()
        with pytest.raises(StoreError) as info, store.lock("engine-resnet50", timeout=0.5):
            pytest.fail("lock should not have been acquired")
        elapsed = time.monotonic() - start
        assert 0.45 <= elapsed < 5
        message = str(info.value)
        assert "engine-resnet50" in message
        assert "0.5s" in message
        assert "another trtbuild process" in message
        assert str(root / "locks" / "engine-resnet50.lock") in message
        assert f"pid {holder.pid}" in message
        # other lock names are independent
        with store.lock("something-else", timeout=0.5):
            pass
    finally:
        release.touch()
        assert finish(holder).strip() == "released"
    # once released, the lock is ours quickly
    with Store(root).lock("engine-resnet50", timeout=10):
        pass


def test_lock_released_when_holder_dies(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    ready, release = tmp_path / "ready", tmp_path / "release"
    holder = spawn(HOLD_WORKER, str(root), str(ready), str(release))
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    holder.kill()
    holder.communicate()
    with Store(root).lock("engine-resnet50", timeout=10):
        pass  # the lock file is still there, but the kernel dropped the lock


COUNTER_WORKER = """
import sys, time
from pathlib import Path
from trtbuild.store import Store

root, counter = Path(sys.argv[1]), Path(sys.argv[2])
store = Store(root)
for _ in range(25):
    with store.lock("counter", timeout=60):
        n = int(counter.read_text())
        time.sleep(0.001)
        counter.write_text(str(n + 1))
"""


def test_lock_gives_mutual_exclusion(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    procs = [spawn(COUNTER_WORKER, str(tmp_path / "cache"), str(counter)) for _ in range(4)]
    for p in procs:
        finish(p)
    assert counter.read_text() == "100"


def test_invalid_lock_name(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    for bad in ["", "../x", "a/b", ".x"]:
        with pytest.raises(StoreError, match="invalid lock name"), store.lock(bad):
            pass


def test_action_result_written_by_another_process_is_read(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    src = tmp_path / "f"
    src.write_bytes(b"shared")
    writer = spawn(
        """
        import sys
        from pathlib import Path
        from trtbuild.store import ActionResult, Store
        s = Store(Path(sys.argv[1]))
        d = s.put_file(Path(sys.argv[2]))
        s.put_action(sys.argv[3], ActionResult(outputs={"x": d}, meta={"from": "child"}))
        """,
        str(root),
        str(src),
        KEY,
    )
    finish(writer)
    got = Store(root).get_action(KEY)
    assert got == ActionResult(outputs={"x": FileDigest(digest_bytes(b"shared"), 6)}, meta={"from": "child"})
