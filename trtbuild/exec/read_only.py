"""A cache that cannot be written: a consumer's (CI jobs reading what a trusted builder filled).

Such a run may only read. Everything it needs must be cached: a task to build is refused, by name,
before anything runs (the run would fail at its first write, after materialising the rest). With
everything cached the run writes nothing to the cache: no work dirs nor their sweep (scratch.py),
no task locks (taken on a miss only), no GC roots (api.run), no entry refresh or stat cache rows
(both best effort, failing quietly on a read-only file system). Outputs, reports and the lock are
written as usual: they live beside the config, not in the cache.
"""

from __future__ import annotations

from trtbuild.errors import EXIT_USAGE, ReadOnlyCache
from trtbuild.plan.plan import Plan

SHOWN = 8  # task ids named in the message; the rest are counted


def check_read_only(the_plan: Plan, *, use_cache: bool) -> list[str]:
    """The note a run on a read-only cache prints; ReadOnlyCache if it would have to build."""
    root = the_plan.store.root
    missing = [node_id for node_id, status in the_plan.statuses.items() if status.state != "cached"]
    if not use_cache:
        raise ReadOnlyCache(
            f"the cache {root} is read-only, and --no-cache would build every task into it: "
            "drop --no-cache, or pass --cache-dir DIR (or set TRTBUILD_CACHE_DIR) to a writable folder"
        )
    if missing and not the_plan.store.has_entries():
        raise ReadOnlyCache(
            f"the cache {root} is read-only and empty: there is nothing to read. Pass --cache-dir DIR "
            "(or set TRTBUILD_CACHE_DIR) to the filled cache, or to a writable folder to build here",
            exit_status=EXIT_USAGE,
        )
    if missing:
        names = ", ".join(missing[:SHOWN]) + (
            f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
        )
        raise ReadOnlyCache(
            f"the cache {root} is read-only; cannot build {names} ({len(missing)} task(s) not in it). "
            "Build them where the cache is written (the job that fills it), or pass --cache-dir DIR "
            "(or set TRTBUILD_CACHE_DIR) to a writable folder"
        )
    return [f"the cache {root} is read-only: every task was cached; nothing was written to it"]
