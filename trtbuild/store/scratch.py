"""Who owns what is in the cache's tmp/, told by held `flock`s rather than PIDs (which are reused, and
mean nothing to another container sharing the cache), so a run can remove what killed runs left.

- A task's work dir (`tmp/<kind>-XXXX/`) holds `.owner`, flock'ed exclusively for the dir's whole
  life: a dir whose `.owner` can be locked by someone else belongs to a dead process.
- Every process that runs tasks holds `locks/tmp-users.lock` shared from the start of its run to
  its end. A run that can turn its own shared lock into an exclusive one is the cache's only user:
  then every other entry of tmp/ (loose temp files of blobs, entries and roots a killed process was
  writing, dirs killed before their `.owner` was locked) is a leftover. Otherwise only work dirs
  with a free `.owner` go.

Planning writes only best-effort markers to tmp/ (validated configs), whose writers shrug off a
temp file removed under them. The kernel drops a dead process's flocks, kill -9 included. A cache
that cannot be written holds no lock and sweeps nothing (nothing is written to it either).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trtbuild.errors import StoreError
from trtbuild.store._fsutil import rmtree_force, unlink_quietly

OWNER = ".owner"
USERS = "tmp-users.lock"  # in the store's locks/

_held: dict[Path, int] = {}  # USERS lock path -> this process's descriptor of it, held shared


def hold_users_lock(users: Path) -> bool:
    """Take (once per process and cache, for the process's life) the shared lock at `users` every
    process running tasks holds. False when it cannot be taken (a read-only cache)."""
    if users in _held:
        return True
    try:
        users.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(users, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while another run sweeps (milliseconds)
    _held[users] = fd
    return True


@dataclass(frozen=True)
class Swept:
    removed: int  # entries of tmp/ removed
    alone: bool  # no other process held the cache: every temp file of trtbuild's is a leftover


def sweep(tmp: Path, users: Path) -> Swept:
    """Take the users lock, and remove what dead processes left in `tmp`."""
    if not hold_users_lock(users):
        return Swept(0, alone=False)
    fd = _held[users]
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone = True
    except BlockingIOError:
        alone = False
    try:
        return Swept(sum(_remove_if_dead(entry, alone) for entry in _entries(tmp)), alone)
    finally:
        # Back to shared (a failed conversion may have dropped the lock: flock(2) converts by
        # unlocking first); this process creates nothing in tmp/ before it holds it again.
        fcntl.flock(fd, fcntl.LOCK_SH)


def _entries(tmp: Path) -> list[Path]:
    try:
        return list(tmp.iterdir())
    except OSError:
        return []


def _remove_if_dead(entry: Path, alone: bool) -> bool:
    if entry.is_dir() and not entry.is_symlink():
        with _owner_lock(entry, wait=False) as free:
            if not (free or alone):
                return False
            rmtree_force(entry)  # with its owner lock held, so no one else decides on it meanwhile
            return True
    if not alone:
        return False
    unlink_quietly(entry)
    return True


def owner_state(entry: Path) -> Literal["alive", "dead", "none"]:
    """Whether the process owning the work dir `entry` is alive (its `.owner` is locked) or dead;
    "none" for an entry without an owner (a loose temp file, a dir killed before it had one)."""
    if not (entry / OWNER).exists():
        return "none"
    with _owner_lock(entry, wait=False) as free:
        return "dead" if free else "alive"


@contextmanager
def _owner_lock(directory: Path, *, wait: bool) -> Iterator[bool]:
    """Exclusively lock `directory`'s `.owner`: True once held; False when another process holds it
    (with `wait=False`) or the dir has none yet."""
    try:
        fd = os.open(directory / OWNER, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextmanager
def owned_dir(tmp: Path, prefix: str, users: Path) -> Iterator[Path]:
    """A fresh `tmp/<prefix>XXXX/` owned by this process (its `.owner` locked) until it is removed.
    `.owner` is locked under another name and renamed: a sweeper never finds it unlocked."""
    import tempfile  # only running tasks need scratch folders (a no-op skips tempfile, random)

    try:
        tmp.mkdir(parents=True, exist_ok=True)
        hold_users_lock(users)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp))
    except OSError as exc:
        raise StoreError(f"cannot create a temp dir under {tmp}: {exc.strerror or exc}") from exc
    try:
        fd = os.open(path / f"{OWNER}-new", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        rmtree_force(path)
        raise StoreError(f"cannot create a temp dir under {tmp}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(path / f"{OWNER}-new", path / OWNER)
        yield path
    finally:
        rmtree_force(path)  # before the lock goes
        os.close(fd)


def cannot_write(root: Path) -> bool:
    """Whether nothing can be created in `root` (or, if it does not exist yet, where it would be
    made). access(2) answers EROFS for root on a read-only mount too, where modes do not stop it."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return not os.access(probe, os.W_OK)


def is_temp_of(name: str, target: str) -> bool:
    """Whether `name` is a temp file that `files.temp_path` makes for writing `target` atomically."""
    prefix, _, rest = name.partition(f".{target}.")
    pid, _, tail = rest.partition(".")
    return prefix == "" and pid.isdigit() and len(tail) == 16 and tail.endswith(".tmp")


def remove_temp_files(folder: Path, targets: Iterable[str]) -> int:
    """Remove the temp files left in `folder` by killed writers of `targets` (call only when no
    other trtbuild process can be writing them: `Swept.alone`); how many went."""
    wanted = set(targets)
    try:
        names = [entry.name for entry in os.scandir(folder)]
    except OSError:
        return 0
    stale = [name for name in names if any(is_temp_of(name, target) for target in wanted)]
    for name in stale:
        unlink_quietly(folder / name)
    return len(stale)
