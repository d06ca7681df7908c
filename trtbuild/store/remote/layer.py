"""A shared remote cache behind the local one: read-through, write-through, never trusted blindly.

- **Read-through.** A local miss asks the remote for the key's action entry. The entry must check
  itself (its sha256 digest covers its content and key, as locally), and every output blob is
  downloaded into the local cache's tmp/, hashed, and compared with the digest and size the entry
  names before it is kept. Then the entry is written locally, and the local cache answers: from then
  on, the result is as local as one built here. A damaged entry or a blob that does not hash to its
  name is not used (one warning naming the task), the task runs here, and its result is published
  over the bad copy.
- **Write-through.** When a task's result is recorded (it was built here), its blobs are uploaded
  first, every one, then its entry, so a reader that sees an entry finds its blobs, and the local
  entry last, so a run killed while publishing leaves nothing that its clone's next run would take
  as a local hit and never publish. A blob the remote already holds is uploaded again all the same:
  its size says nothing of its bytes, and a damaged copy of the right size, skipped, would be named
  by every new entry and cost every reader a rebuild; the writer has just made the bytes, so a
  writer that builds a task repairs the remote. Uploads are whole or invisible (files.py).
- **Not shared.** A result whose meta says a choice of this run's that is not key material made
  its bytes (``reproducibility.not_shared``: an engine built with TRTBUILD_LOG=debug) is kept
  locally and not published: every other run of that key would be handed bytes its own build would
  not make. The run's summary says how many and why.
- **Read-only.** A consumer (a CI job that must not publish) reads through and uploads nothing. A
  remote that refuses a write (a read-only or full share, no permission) is used read-only from then on,
  with one warning: reads go on.
- **Faults degrade.** The first failure to reach or use the remote (unreachable, a timeout, a 5xx,
  denied) is said once, in a warning, and the rest of the run does without the remote: every task
  it would have served is built or found locally. What was built is kept.

The trust model is Bazel's: blobs are verified by hash, so a remote cannot hand out damaged or
substituted bytes under a digest; but whoever can write action entries decides what a key maps to.
Keep write access to trusted builders (CI) and give everyone else read-only access.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Collection, Iterable
from contextlib import AbstractContextManager
from pathlib import Path

from trtbuild.store.action_cache import ActionResult, DamagedEntry, decode, encode
from trtbuild.store.cas import FileDigest
from trtbuild.store.hashing import FileHasher, digest_file, digest_hex
from trtbuild.store.remote.files import RemoteFiles
from trtbuild.store.remote.settings import RemoteSettings
from trtbuild.store.scratch import Swept
from trtbuild.store.store import Store
from trtbuild.store.validated import ParsedConfigs, ValidatedDocuments

log = logging.getLogger("trtbuild.store")

# Values never to appear in a message, whatever a library puts in its exception text.
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")


class RemoteStore:
    """The store protocol over a local :class:`Store` and a remote cache (see the module doc)."""

    def __init__(self, local: Store, settings: RemoteSettings, files: RemoteFiles | None = None) -> None:
        self.local = local
        self.settings = settings
        self._files = files or RemoteFiles(settings)
        self._guard = threading.Lock()
        self._state = "unchecked"  # -> "up" or "down" at first use
        self._warned: set[str] = set()
        self._swept = False
        self._unwritable = False  # a write was refused: read-only from then on, reads go on
        # Keys whose remote copy was found unusable: not asked for again in this run (planning and
        # the executor each look a key up, the executor twice around its lock: a damaged 100 MB
        # engine was downloaded three times).
        self._unusable: set[str] = set()
        self._fetched = [0, 0]  # results, bytes
        self._published = [0, 0]
        self._peeked = 0  # results found by a plan, not downloaded
        self._withheld = 0  # results built here that a read-only remote was not given
        self._not_shared: dict[str, int] = {}  # why -> results built here kept from the remote

    def __repr__(self) -> str:
        return f"RemoteStore({self.local!r}, {self.settings.url!r})"

    # -- action results: where the remote comes in -------------------------------------------------
    def get_action(
        self, key: str, *, outputs: Collection[str] | None = None, task: str | None = None, fetch: bool = True
    ) -> ActionResult | None:
        result = self.local.get_action(key, outputs=outputs, task=task)
        with self._guard:
            unusable = key in self._unusable
        if result is not None or unusable or not self._usable():
            return result
        who = task or f"action {key[:12]}"
        try:
            if not fetch:
                return self._peek(key, outputs, who)
            fetched = self._fetch(key, outputs, who)
        except Exception as error:  # fsspec, aiohttp and botocore raise many types: all are faults here
            self._down(error)
            return None
        if not fetched:
            return None
        return self.local.get_action(key, outputs=outputs, task=task)

    def _peek(self, key: str, outputs: Collection[str] | None, who: str) -> ActionResult | None:
        """The remote's checked entry, nothing downloaded (planning)."""
        result = self._remote_entry(key, outputs, who)
        if result is not None:
            with self._guard:
                self._peeked += 1
        return result

    def _remote_entry(self, key: str, outputs: Collection[str] | None, who: str) -> ActionResult | None:
        try:
            data = self._files.read_entry(key)
            result = decode(data, key) if data is not None else None
        except DamagedEntry as damaged:
            self._set_aside(
                key, f"{who}: the remote cache's entry is damaged ({damaged}): not used, the task runs"
            )
            return None
        if result is None:  # none, or another trtbuild's format: a miss, republished in this one's
            return None
        if outputs is not None and set(result.outputs) != set(outputs):
            self._set_aside(
                key, f"{who}: the remote cache's entry names outputs {sorted(result.outputs)}: not used"
            )
            return None
        return result

    def _fetch(self, key: str, outputs: Collection[str] | None, who: str) -> bool:
        result = self._remote_entry(key, outputs, who)
        if result is None:
            return False
        fetched_bytes = 0
        for name, digest in result.outputs.items():
            if self.local.has_blob(digest.hash) and self.local.verify_blob(digest.hash):
                continue
            problem = self._download(digest)
            if problem is not None:
                self._set_aside(
                    key,
                    f"{who}: the remote cache's blob for {name} {problem}: not used, the task runs here "
                    "and its result replaces the remote copy"
                    + ("" if not self.settings.read_only else " where a writer builds it"),
                )
                return False
            fetched_bytes += digest.size
        self.local.put_action(key, result)
        with self._guard:
            self._fetched[0] += 1
            self._fetched[1] += fetched_bytes
        return True

    def _download(self, digest: FileDigest) -> str | None:
        """Fetch a blob into the local cache, verified; what is wrong with the remote copy, or None."""
        with self.local.temp_dir("fetch-") as work:
            dest = work / "blob"
            if not self._files.fetch_blob(digest.hash, dest, digest.size):
                return "is missing"
            size = os.stat(dest).st_size
            if size != digest.size or digest_file(dest) != digest.hash:
                return f"(blob {digest_hex(digest.hash)[:12]}) does not hash to its name"
            self.local.put_file(dest, move=True)
        return None

    def put_action(self, key: str, result: ActionResult) -> None:
        # The remote first (its blobs are already in the local cache), the local entry last: a run
        # killed in between leaves a remote entry that the next run reads back, where the other order
        # left a local entry that no later run of this clone would ever publish (a local hit).
        not_shared = _not_shared(result)
        if not_shared is not None:
            with self._guard:
                self._not_shared[not_shared] = self._not_shared.get(not_shared, 0) + 1
        elif not (self.settings.read_only or self._unwritable) and self._usable():
            self._try_publish(key, result)
        self.local.put_action(key, result)
        if self.settings.read_only and not_shared is None:
            with self._guard:
                self._withheld += 1  # said in notes(): a writer that is read-only by mistake sees it

    def _try_publish(self, key: str, result: ActionResult) -> None:
        try:
            published = self._publish(key, result)
        except Exception as error:  # see get_action; the local result is recorded all the same
            if _write_refused(error):
                self._cannot_write(error)
            else:
                self._down(error)
            return
        with self._guard:
            self._published[0] += 1
            self._published[1] += published

    def _publish(self, key: str, result: ActionResult) -> int:
        """Blobs first, the entry last (module doc); the bytes uploaded."""
        with self._guard:
            sweep, self._swept = not self._swept, True
        if sweep:  # once a run, by writers only: what killed writers left in a shared folder's tmp/
            self._files.sweep_stale_temp()
        uploaded = 0
        for digest in result.outputs.values():  # all of them, even those it holds (module doc)
            self._files.put_blob(digest.hash, self.local.local_path(digest.hash))
            uploaded += digest.size
        self._files.put_entry(key, encode(result, key))
        return uploaded

    def drop_action(self, key: str, why: str, task: str | None = None) -> None:
        self.local.drop_action(key, why, task)

    def share(self, key: str, result: ActionResult, *, again: bool = False) -> None:
        """Publish a local result the remote lacks (built while the remote was down or another one
        was set), as put_action would have, or, `again`, over a remote copy found damaged (every
        blob is uploaded); nothing when this machine may not write."""
        if (
            self.settings.read_only
            or self._unwritable
            or _not_shared(result) is not None
            or not self._usable()
        ):
            return
        try:
            there = not again and self._files.read_entry(key) is not None
        except Exception as error:  # see get_action
            self._down(error)
            return
        if not there:
            with self._guard:
                self._unusable.discard(key)  # a copy set aside as damaged is replaced
            self._try_publish(key, result)

    # -- faults --------------------------------------------------------------------------------------
    def _usable(self) -> bool:
        """Whether to ask the remote; its reachability is checked once, at first use."""
        with self._guard:
            if self._state != "unchecked":
                return self._state == "up"
            if self.local.read_only:
                self._state = "down"
                self._warn_locked(
                    f"{self.settings.describe()} is not used: the local cache {self.local.root} is "
                    "read-only, so nothing fetched could be kept"
                )
                return False
            try:
                self._files.check_reachable()
            except Exception as error:
                self._state = "down"
                self._warn_locked(self._fault_message(error))
                return False
            self._state = "up"
            return True

    def _down(self, error: BaseException) -> None:
        log.debug("remote cache fault", exc_info=True)
        with self._guard:
            if self._state == "down":  # another thread's request failed first and said so
                return
            self._state = "down"
            self._warn_locked(self._fault_message(error))

    def _cannot_write(self, error: BaseException) -> None:
        """A write refused (a read-only or full share, no permission): the remote still serves reads, so
        only publishing stops, said once with what to pass next time."""
        log.debug("remote cache write refused", exc_info=True)
        with self._guard:
            if self._unwritable:
                return
            self._unwritable = True
            what = scrubbed(f"{type(error).__name__}: {error}".strip())
            self._warn_locked(
                f"{self.settings.describe()} cannot be written ({what}); it is still read, and this run "
                "publishes nothing to it. On a machine that only reads, pass --remote-read-only "
                "(or set TRTBUILD_REMOTE_READ_ONLY=1)"
            )

    def _fault_message(self, error: BaseException) -> str:
        what = scrubbed(f"{type(error).__name__}: {error}".strip())
        return (
            f"{self.settings.describe()} cannot be used ({what}); building locally, and the rest of "
            "this run does without it"
        )

    def _set_aside(self, key: str, message: str) -> None:
        """The remote's copy of `key` cannot be used: say so once, and do not ask for it again."""
        with self._guard:
            self._unusable.add(key)
            self._warn_locked(message)

    def _warn_locked(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s", message)

    def notes(self) -> list[str]:
        fetched, fetched_bytes = self._fetched
        published, published_bytes = self._published
        said = [f"{fetched} result(s) fetched ({_megabytes(fetched_bytes)})"] if fetched else []
        if self._peeked:
            said.append(f"{self._peeked} result(s) found, downloaded when a run needs them")
        if published:
            said.append(f"{published} published ({_megabytes(published_bytes)} uploaded)")
        if self._withheld:
            said.append(
                f"{self._withheld} result(s) built here not published: read-only"
                + (f" ({self.settings.read_only_from})" if self.settings.read_only_from else "")
            )
        said += [f"{count} result(s) not published: {why}" for why, count in sorted(self._not_shared.items())]
        return [f"{self.settings.describe()}: {', '.join(said)}"] if said else []

    # -- everything else is the local cache's -----------------------------------------------------
    @property
    def root(self) -> Path:
        return self.local.root

    @property
    def read_only(self) -> bool:
        return self.local.read_only

    @property
    def toolchains_dir(self) -> Path:
        return self.local.toolchains_dir

    def has_entries(self) -> bool:
        return self.local.has_entries()

    def file_hasher(self) -> FileHasher:
        return self.local.file_hasher()

    def validated_documents(self) -> ValidatedDocuments:
        return self.local.validated_documents()

    def parsed_configs(self) -> ParsedConfigs:
        return self.local.parsed_configs()

    def put_file(self, path: Path, *, move: bool = False) -> FileDigest:
        return self.local.put_file(path, move=move)

    def read_blob(self, digest: str) -> bytes:
        return self.local.read_blob(digest)

    def read_verified(self, digest: str) -> bytes:
        return self.local.read_verified(digest)

    def local_path(self, digest: str) -> Path:
        return self.local.local_path(digest)

    def has_blob(self, digest: str) -> bool:
        return self.local.has_blob(digest)

    def verify_blob(self, digest: str) -> bool:
        return self.local.verify_blob(digest)

    def materialize(self, digest: str, dest: Path) -> None:
        self.local.materialize(digest, dest)

    def add_root(self, name: str, keys: Iterable[str], *, lock_path: Path | None = None) -> None:
        self.local.add_root(name, keys, lock_path=lock_path)

    def add_run_root(self, keys: Iterable[str]) -> bool:
        return self.local.add_run_root(keys)

    def temp_dir(self, prefix: str) -> AbstractContextManager[Path]:
        return self.local.temp_dir(prefix)

    def sweep_temp(self) -> Swept:
        return self.local.sweep_temp()

    def lock(self, name: str, timeout: float = 600.0) -> AbstractContextManager[None]:
        return self.local.lock(name, timeout)


def scrubbed(text: str) -> str:
    """``text`` with the value of every AWS secret variable set here replaced by ``***``."""
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text


# A remote that refuses writes (read-only, denied, full, over quota) can still serve reads.
WRITE_REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)


def _write_refused(error: BaseException) -> bool:
    """Whether a write failed because the remote takes no writes from us (not because it is down)."""
    return isinstance(error, PermissionError) or (isinstance(error, OSError) and error.errno in WRITE_REFUSED)


def _not_shared(result: ActionResult) -> str | None:
    """Why `result` must not go to a shared cache (module doc), or None."""
    record = result.meta.get("reproducibility")
    why = record.get("not_shared") if isinstance(record, dict) else None
    return str(why) if why else None


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"
