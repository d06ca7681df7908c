"""The action cache: ``ac/<first 2>/<key>.json`` maps a task key to its output manifest and metadata.

File format 3 (written with ``sort_keys``)::

    {"version": 3, "digest": "sha256:<hex>",
     "outputs": {"model.onnx": {"hash": "blake3:<hex>", "size": 123}}, "meta": {...}}

``digest`` is the sha256 of the entry's canonical content: every field but itself, and the key the
entry is filed under, as :func:`canonical` spells it (so an entry copied to another key's path, a
valid entry of another task, is damaged too). An entry checks itself on every read: one whose digest
does not match (a flipped byte, a hand edit that leaves valid JSON, a write another tool cut short)
is damaged, and the store counts it as a miss with a warning, never as a result. The digest is a
checksum, not a signature: whoever can write entries can write a matching digest (the trust model of
Bazel's action cache, docs/architecture.md). sha256, not BLAKE3: hashlib is loaded anyway for keys,
and a fully cached run never imports blake3. Entries of older formats (1: no digest; 2: a digest
without the key) are a clean miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import StoreError
from trtbuild.files import write_atomic
from trtbuild.store._fsutil import FILE_MODE, read_regular, remove_any
from trtbuild.store.cas import FileDigest
from trtbuild.store.hashing import is_digest

AC_FORMAT_VERSION = 3
ENTRY_DIGEST_PREFIX = "sha256:"
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{1,199}")


@dataclass(frozen=True)
class ActionResult:
    """What a task produced: output name (e.g. ``"model.onnx"``) -> digest, plus JSON-able metadata."""

    outputs: dict[str, FileDigest]
    meta: dict[str, Any]


def check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key) or ".." in key:
        raise StoreError(
            f"invalid action key {key!r}: expected 2-200 characters of letters, digits, '_', '-' or '.'"
        )
    return key


class DamagedEntry(Exception):
    """An action entry that cannot be trusted: what is wrong with it (the message, for the warning)
    and the stat of the file that was read, so that only that file is removed."""

    stat: os.stat_result | None = None


def canonical(doc: dict[str, Any], key: str) -> bytes:
    """The bytes an entry's digest covers: the key it is filed under and the entry without its
    digest, in one spelling."""
    body = {name: value for name, value in doc.items() if name != "digest"}
    filed = {"key": key, "entry": body}
    return json.dumps(filed, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def entry_digest(doc: dict[str, Any], key: str) -> str:
    return ENTRY_DIGEST_PREFIX + hashlib.sha256(canonical(doc, key)).hexdigest()


def encode(result: ActionResult, key: str) -> bytes:
    doc: dict[str, Any] = {
        "version": AC_FORMAT_VERSION,
        "outputs": {name: {"hash": d.hash, "size": d.size} for name, d in result.outputs.items()},
        "meta": result.meta,
    }
    try:
        doc["digest"] = entry_digest(doc, key)
        return (json.dumps(doc, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise StoreError(f"action result metadata is not JSON-serialisable: {exc}") from exc


def decode(data: bytes, key: str) -> ActionResult | None:
    """Parse an action cache entry; None if it is of another format version (a clean miss: format 1
    had no digest).
    DamagedEntry if it is not what this trtbuild wrote: not JSON, a digest that does not match its
    content, or fields of the wrong shape."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise DamagedEntry(f"not JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise DamagedEntry("not a JSON object")
    version = doc.get("version")
    if version != AC_FORMAT_VERSION:
        if isinstance(version, int) and not isinstance(version, bool):
            return None  # another trtbuild's format: a miss, rebuilt and rewritten in this one's
        raise DamagedEntry(f"format version {version!r}")
    try:
        digest_ok = doc.get("digest") == entry_digest(doc, key)
    except (TypeError, ValueError):
        digest_ok = False
    if not digest_ok:
        raise DamagedEntry("its digest does not match its content and key")
    return _parsed(doc)


def _parsed(doc: dict[str, Any]) -> ActionResult:
    outputs, meta = doc.get("outputs"), doc.get("meta")
    if not isinstance(outputs, dict) or not isinstance(meta, dict) or set(doc) != _FIELDS:
        raise DamagedEntry(f"fields {sorted(doc)}, expected {sorted(_FIELDS)}")
    parsed: dict[str, FileDigest] = {}
    for name, entry in outputs.items():
        h = entry.get("hash") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if not is_digest(h) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise DamagedEntry(f"output {name!r} is not a digest and a size")
        parsed[name] = FileDigest(h, size)
    return ActionResult(outputs=parsed, meta=meta)


_FIELDS = {"version", "digest", "outputs", "meta"}


class ActionCache:
    """Raw action-cache file access; blob checks are the Store's job."""

    def __init__(self, ac_dir: Path, tmp_dir: Path) -> None:
        self.ac_dir = ac_dir
        self.tmp_dir = tmp_dir

    def path(self, key: str) -> Path:
        check_key(key)
        return self.ac_dir / key[:2] / f"{key}.json"

    def read(self, key: str) -> tuple[ActionResult | None, os.stat_result | None]:
        """The parsed entry (None if absent or of an older format) and the stat of the file that was
        read. DamagedEntry if the file is there but cannot be trusted (:func:`decode`)."""
        path = self.path(key)
        try:
            data, st = read_regular(path)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise DamagedEntry(f"unreadable: {exc.strerror or exc}") from None
        try:
            return decode(data, key), st
        except DamagedEntry as damaged:
            damaged.stat = st
            raise

    def write(self, key: str, result: ActionResult) -> None:
        data = encode(result, key)
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, temp_dir=self.tmp_dir, mode=FILE_MODE)

    def remove(self, key: str, expected: os.stat_result | None = None) -> None:
        """Delete an entry; with ``expected``, only if it is still the file that was read."""
        path = self.path(key)
        if expected is not None:
            try:
                current = os.stat(path)
            except OSError:
                return
            if not os.path.samestat(current, expected):
                return
        with contextlib.suppress(OSError):
            remove_any(path)
