"""GC roots: ``roots/<name>.json`` files naming the action keys that garbage collection must keep.

Two kinds, told apart by whether they name a lock file:

* a **lock root** (``lock-<sha256 of the absolute lock path>[:16]``) is rewritten each time a lock file
  is written. Garbage collection reads the *current* lock file rather than the keys copied here, because
  the user may have edited or reverted the lock in git since; the copy is only a fallback for a lock file
  that exists but cannot be read.
* a **run root** (``run-<sha256 of the run's sorted keys>[:16]``) records the keys a run used, so recent
  work stays cached even without a lock. Named by its keys, a run that used the same keys as an earlier
  one (a no-op, above all) finds its root already there and writes nothing unless the root's time is
  older than ``RUN_ROOT_REFRESH_S`` or another run's root was written since (gc keeps the newest);
  at most ``RUN_ROOTS_KEPT`` run roots are kept, the oldest going first when a new one is added (a
  morning of no-op runs used to leave 130 ``run-*.json`` files).

File format (written with ``sort_keys``)::

    {"version": 1, "keys": ["<key>", ...], "lock": "/abs/path/to/x.lock" | null, "time": 1767225600.5}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from trtbuild.errors import StoreError
from trtbuild.files import write_atomic
from trtbuild.store._fsutil import FILE_MODE, read_regular, unlink_quietly
from trtbuild.store.action_cache import check_key

ROOTS_FORMAT_VERSION = 1
# A no-op run leaves its run root alone unless it is older than this: gc's age rule (days) sees
# the run a day late at most, and a run of the same keys does not rewrite a file.
RUN_ROOT_REFRESH_S = 86400.0
# The run roots kept (newest by time); gc's `keep_last` (3 by default) stays well inside it.
RUN_ROOTS_KEPT = 50
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Root:
    """One GC root: its name, the action keys it holds, the lock file it stands for (if any), when written."""

    name: str
    keys: frozenset[str]
    lock: Path | None
    time: float

    @property
    def is_lock(self) -> bool:
        return self.lock is not None


def run_root_name(keys: Iterable[str]) -> str:
    """The name of the root of a run that used ``keys``: ``run-<sha256 of the sorted keys>[:16]``."""
    digest = hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()
    return f"run-{digest[:16]}"


def lock_root_name(lock_path: Path | str) -> str:
    """The stable name of a lock file's root, so rewriting the lock replaces its previous root."""
    digest = hashlib.sha256(os.path.abspath(lock_path).encode()).hexdigest()
    return f"lock-{digest[:16]}"


def check_root_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name:
        raise StoreError(f"invalid root name {name!r}: use letters, digits, '_', '-' or '.'")
    return name


def encode(keys: Iterable[str], lock_path: Path | None, when: float) -> bytes:
    doc = {
        "version": ROOTS_FORMAT_VERSION,
        "keys": sorted({check_key(k) for k in keys}),
        "lock": os.path.abspath(lock_path) if lock_path is not None else None,
        "time": when,
    }
    return (json.dumps(doc, sort_keys=True, indent=2) + "\n").encode()


def decode(name: str, data: bytes) -> Root | None:
    """Parse a root file; None if it is damaged or of another format version."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != ROOTS_FORMAT_VERSION:
        return None
    keys, lock, when = doc.get("keys"), doc.get("lock"), doc.get("time")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return None
    if lock is not None and not isinstance(lock, str):
        return None
    if not isinstance(when, int | float) or isinstance(when, bool):
        return None
    return Root(name=name, keys=frozenset(keys), lock=Path(lock) if lock else None, time=float(when))


class Roots:
    """Raw access to ``roots/``; the policy of what to keep is :mod:`trtbuild.store.gc`'s."""

    def __init__(self, roots_dir: Path, tmp_dir: Path) -> None:
        self.roots_dir = roots_dir
        self.tmp_dir = tmp_dir

    def path(self, name: str) -> Path:
        return self.roots_dir / f"{check_root_name(name)}.json"

    def add(self, name: str, keys: Iterable[str], lock_path: Path | None) -> None:
        """Write the root; a lock root that already holds these keys for this lock is left alone (gc
        reads no time from a lock root), so an unchanged lock costs no write."""
        keys = frozenset(keys)
        path = self.path(name)
        if lock_path is not None:
            try:
                current = decode(name, read_regular(path)[0])
            except OSError:
                current = None
            if (
                current is not None
                and current.keys == keys
                and current.lock == Path(os.path.abspath(lock_path))
            ):
                return
        data = encode(keys, lock_path, time.time())
        try:
            self.roots_dir.mkdir(parents=True, exist_ok=True)
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data, temp_dir=self.tmp_dir, mode=FILE_MODE)
        except OSError as exc:
            raise StoreError(f"cannot record GC root {path}: {exc.strerror or exc}") from exc

    def add_run(self, keys: Iterable[str]) -> bool:
        """Record a run's keys (see the module doc); False when an unchanged, recent root was left alone."""
        keys = frozenset(keys)
        name = run_root_name(keys)
        try:
            current = decode(name, read_regular(self.path(name))[0])
        except OSError:
            current = None
        if (
            current is not None
            and current.keys == keys
            and time.time() - current.time < RUN_ROOT_REFRESH_S
            and self._newest_run(name)
        ):
            return False
        self.add(name, keys, None)
        self._drop_old_runs(keep=name)
        return True

    def _newest_run(self, name: str) -> bool:
        """Whether no other run root was written since `name` (by mtime, one stat per root): gc's
        `keep_last` keeps the newest roots, so a run whose root is older than another run's is
        written again, or `gc --keep-last 1` after runs of B then A (a no-op) would keep B's."""
        try:
            own = os.stat(self.path(name)).st_mtime_ns
            with os.scandir(self.roots_dir) as entries:
                return not any(
                    entry.name.startswith("run-")
                    and entry.name.endswith(".json")
                    and entry.name != f"{name}.json"
                    and entry.stat().st_mtime_ns >= own
                    for entry in entries
                )
        except OSError:
            return False

    def _drop_old_runs(self, keep: str) -> None:
        runs = sorted((r for r in self.read_all() if not r.is_lock), key=lambda r: r.time, reverse=True)
        for root in runs[RUN_ROOTS_KEPT:]:
            if root.name != keep:
                self.remove(root.name)

    def read_all(self) -> list[Root]:
        """Every readable root, sorted by name; damaged ones are skipped with a warning (and kept on disk,
        since a newer trtbuild may have written them)."""
        try:
            paths = sorted(self.roots_dir.glob("*.json"))
        except OSError:
            return []
        roots: list[Root] = []
        for path in paths:
            name = path.name.removesuffix(".json")
            try:
                root = decode(name, read_regular(path)[0]) if _NAME_RE.fullmatch(name) else None
            except FileNotFoundError:
                continue  # removed by a concurrent gc
            except OSError as exc:
                _log.warning("skipping unreadable GC root %s: %s", path, exc.strerror or exc)
                continue
            if root is None:
                _log.warning("skipping damaged GC root %s", path)
                continue
            roots.append(root)
        return roots

    def remove(self, name: str) -> None:
        unlink_quietly(self.path(name))
