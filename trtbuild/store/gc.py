"""Garbage collection: free the action entries and blobs that no lock file and no recent run needs.

What is live:

* every key of every lock file that still exists, read from the lock file itself (the user may have
  edited or reverted it in git since its root was written). A lock root whose file is gone is dropped.
* every key of the ``keep_last`` newest run roots, and of run roots younger than ``max_age_days``.
  Other run roots are dropped. (Runs of the same keys share one root, whose time a run refreshes
  once a day, or when another run's root was written since, and a run keeps at most
  ``roots.RUN_ROOTS_KEPT`` run roots: see ``roots.py``.)

Then action entries that are not live are removed, then blobs that no remaining entry references, then
leftovers in ``tmp/``: work dirs of dead processes at once, others older than a day. Anything modified
within ``grace_seconds`` is spared: a run in progress has not written its root yet, and the store
refreshes mtimes on use (see ``store.py``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.errors import StoreError
from trtbuild.store._fsutil import rmtree_force
from trtbuild.store.roots import Root
from trtbuild.store.scratch import owner_state
from trtbuild.store.store import Store

TEMP_MAX_AGE_S = 86400.0
LOCK_TIMEOUT_S = 600.0
# The lock formats whose task entries gc reads (plan/lock.py: FORMAT_VERSION and its docstring; the
# store sits below the plan layer, so it names them here). Both keep `tasks: {id: {key: ...}}`.
_LOCK_FORMATS = (1, 2, 3)

_log = logging.getLogger(__name__)


@dataclass
class GcReport:
    """What a collection removed and kept (or would have, in a dry run)."""

    dry_run: bool = False
    actions_removed: int = 0
    actions_kept: int = 0
    blobs_removed: int = 0
    blobs_kept: int = 0
    temp_removed: int = 0
    validated_removed: int = 0  # markers of configs that passed the schema, and parses, unused for a day
    toolchains_removed: int = 0  # copies of tools (toolchains/<name>/) unused for max_age_days
    bytes_freed: int = 0
    # Blobs removed from the store but still hard-linked elsewhere (e.g. into build/): their space comes
    # back only when those links go too, so it is not counted in bytes_freed.
    bytes_still_linked: int = 0
    locks_kept: int = 0
    runs_kept: int = 0
    roots_dropped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def collect_garbage(
    store: Store,
    *,
    keep_last: int = 3,
    max_age_days: float | None = 14,
    grace_seconds: float = 3600,
    dry_run: bool = False,
) -> GcReport:
    """Remove what no lock file and no recent run references; see the module doc.

    ``max_age_days=None`` turns the age rule off: only the ``keep_last`` newest runs are kept. With
    ``dry_run`` nothing is changed and the report says what would have been removed."""
    if keep_last < 0:
        raise ValueError(f"keep_last must be >= 0, not {keep_last}")
    if max_age_days is not None and max_age_days < 0:
        raise ValueError(f"max_age_days must be >= 0, not {max_age_days}")
    if store.read_only:
        raise StoreError(
            f"the cache {store.root} is read-only: gc can free nothing in it; run gc where the "
            "cache is written (the job that fills it)"
        )
    report = GcReport(dry_run=dry_run)
    # Two gcs interleaving would each count the other's removals; runs do not take this lock (grace and
    # mtime refreshes protect them instead).
    with store.lock("gc", timeout=LOCK_TIMEOUT_S):
        now = time.time()
        live = _live_keys(store, store.roots(), now, keep_last, max_age_days, report)
        cutoff = now - grace_seconds
        referenced = _collect_actions(store, live, cutoff, report)
        _collect_blobs(store, referenced, cutoff, report)
        _collect_temp(store, now - TEMP_MAX_AGE_S, report)
        _collect_validated(store, now - TEMP_MAX_AGE_S, report)
        unused_for = max(grace_seconds, TEMP_MAX_AGE_S if max_age_days is None else max_age_days * 86400)
        _collect_toolchains(store, now - unused_for, now - TEMP_MAX_AGE_S, report)
    return report


def _live_keys(
    store: Store,
    roots: list[Root],
    now: float,
    keep_last: int,
    max_age_days: float | None,
    report: GcReport,
) -> set[str]:
    """The keys to keep; drops (or, in a dry run, lists) the roots that no longer hold anything."""
    live: set[str] = set()
    dropped: list[Root] = []
    runs: list[Root] = []
    for root in roots:
        if root.lock is None:
            runs.append(root)
        elif root.lock.exists():
            live |= _lock_file_keys(root.lock, fallback=root.keys)
            report.locks_kept += 1
        else:
            dropped.append(root)
    runs.sort(key=lambda r: r.time, reverse=True)
    max_age_s = None if max_age_days is None else max_age_days * 86400
    for index, root in enumerate(runs):
        if index < keep_last or (max_age_s is not None and now - root.time < max_age_s):
            live |= root.keys
            report.runs_kept += 1
        else:
            dropped.append(root)
    for root in dropped:
        report.roots_dropped.append(root.name)
        if not report.dry_run:
            store.remove_root(root.name)
    return live


def _lock_file_keys(lock: Path, *, fallback: frozenset[str]) -> set[str]:
    """The keys the lock file names now; ``fallback`` (the root's copy) if it cannot be read (a merge
    conflict, a newer format), since keeping too much is a smaller harm than losing what a lock needs."""
    try:
        doc = json.loads(lock.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        _log.warning("cannot read lock file %s (%s); keeping the keys it had when last written", lock, exc)
        return set(fallback)
    known = isinstance(doc, dict) and doc.get("format_version", doc.get("version")) in _LOCK_FORMATS
    tasks = doc.get("tasks") if known else None
    if not isinstance(tasks, dict):
        _log.warning(
            "%s is not a lock file of a known format; keeping the keys it had when last written", lock
        )
        return set(fallback)
    return {t["key"] for t in tasks.values() if isinstance(t, dict) and isinstance(t.get("key"), str)}


def _collect_actions(store: Store, live: set[str], cutoff: float, report: GcReport) -> set[str]:
    """Remove dead action entries; returns the blob digests the remaining entries reference."""
    referenced: set[str] = set()
    for key in store.iter_action_keys():
        result, st = store.read_action_entry(key)
        if st is None:
            continue  # removed since it was listed
        if key not in live and st.st_mtime < cutoff:
            # remove_action re-checks the mtime just before unlinking: a run may have used it meanwhile.
            removed = st if report.dry_run else store.remove_action(key, older_than=cutoff)
            if removed is not None:
                report.actions_removed += 1
                report.bytes_freed += removed.st_size
                continue
            result, _ = store.read_action_entry(key)
        report.actions_kept += 1
        if result is not None:
            referenced.update(d.hash for d in result.outputs.values())
    return referenced


def _collect_blobs(store: Store, referenced: Iterable[str], cutoff: float, report: GcReport) -> None:
    keep = set(referenced)
    for digest, size, mtime in store.iter_blobs():
        if digest in keep or mtime >= cutoff:
            report.blobs_kept += 1
            continue
        if report.dry_run:
            removed_size, nlink = size, _link_count(store.blob_path(digest))
        else:
            removed = store.remove_blob(digest, older_than=cutoff)
            if removed is None:
                report.blobs_kept += 1
                continue
            removed_size, nlink = removed.st_size, removed.st_nlink
        report.blobs_removed += 1
        if nlink > 1:
            report.bytes_still_linked += removed_size
        else:
            report.bytes_freed += removed_size


def _collect_temp(store: Store, cutoff: float, report: GcReport) -> None:
    """Temp files and work directories left by killed processes: a work dir whose owner is dead
    (scratch.py) at once, other leftovers a day after their last change. A live process's work dir
    is never touched, however long its task takes."""
    for path, size, newest in list(store.iter_temp_entries()):
        owner = owner_state(path)
        if owner == "dead" or (newest < cutoff and owner == "none"):
            if not report.dry_run:
                store.remove_temp_entry(path)
            report.temp_removed += 1
            report.bytes_freed += size


def _collect_validated(store: Store, cutoff: float, report: GcReport) -> None:
    """Markers of validated configs not used for a while: recreated by one validation if needed."""
    for marker, mtime in list(store.validated_documents().iter_markers()):
        if mtime < cutoff:
            if not report.dry_run:
                with contextlib.suppress(OSError):
                    marker.unlink(missing_ok=True)
            report.validated_removed += 1


def _collect_toolchains(store: Store, cutoff: float, staging_cutoff: float, report: GcReport) -> None:
    """Copies of tools kept for tasks (the build worker's TensorRT packages, one per version and
    install): each use touches its folder, so an old version's copy goes once unused for a while."""
    with contextlib.suppress(OSError):
        for folder in list(store.toolchains_dir.iterdir()):
            with contextlib.suppress(OSError):
                if folder.lstat().st_mtime < cutoff:
                    if not report.dry_run:
                        rmtree_force(folder)
                    report.toolchains_removed += 1
                    continue
                # A copy half made by a killed process (recipe.py stages it under ".staging-").
                for staging in folder.glob(".staging-*"):
                    if staging.lstat().st_mtime < staging_cutoff:
                        if not report.dry_run:
                            rmtree_force(staging)
                        report.temp_removed += 1


def _link_count(path: Path) -> int:
    try:
        return path.lstat().st_nlink
    except OSError:
        return 1
