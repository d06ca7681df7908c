"""The action cache: ``ac/<first 2>/<key>.json`` maps a task key to its output manifest and metadata.

File format (written with ``sort_keys``)::

    {"version": 1, "outputs": {"model.onnx": {"hash": "blake3:<hex>", "size": 123}}, "meta": {...}}
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import StoreError
from trtbuild.files import write_atomic
from trtbuild.store._fsutil import FILE_MODE, unlink_quietly
from trtbuild.store.cas import FileDigest
from trtbuild.store.hashing import is_digest

AC_FORMAT_VERSION = 1
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


def encode(result: ActionResult) -> bytes:
    doc = {
        "version": AC_FORMAT_VERSION,
        "outputs": {name: {"hash": d.hash, "size": d.size} for name, d in result.outputs.items()},
        "meta": result.meta,
    }
    try:
        return (json.dumps(doc, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()
    except (TypeError, ValueError) as exc:
        raise StoreError(f"action result metadata is not JSON-serialisable: {exc}") from exc


def decode(data: bytes) -> ActionResult | None:
    """Parse an action cache entry; None if it is damaged or of another format version."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != AC_FORMAT_VERSION:
        return None
    outputs, meta = doc.get("outputs"), doc.get("meta")
    if not isinstance(outputs, dict) or not isinstance(meta, dict):
        return None
    parsed: dict[str, FileDigest] = {}
    for name, entry in outputs.items():
        if not isinstance(entry, dict):
            return None
        h, size = entry.get("hash"), entry.get("size")
        if not is_digest(h):  # also an older trtbuild's bare sha256 hex: a miss, rebuilt
            return None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return None
        parsed[name] = FileDigest(h, size)
    return ActionResult(outputs=parsed, meta=meta)


class ActionCache:
    """Raw action-cache file access; blob checks are the Store's job."""

    def __init__(self, ac_dir: Path, tmp_dir: Path) -> None:
        self.ac_dir = ac_dir
        self.tmp_dir = tmp_dir

    def path(self, key: str) -> Path:
        check_key(key)
        return self.ac_dir / key[:2] / f"{key}.json"

    def read(self, key: str) -> tuple[ActionResult | None, os.stat_result | None]:
        """The parsed entry (None if absent or damaged) and the stat of the file that was read."""
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                data = f.read()
        except FileNotFoundError:
            return None, None
        except OSError:
            return None, None
        return decode(data), st

    def write(self, key: str, result: ActionResult) -> None:
        data = encode(result)
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
            unlink_quietly(path)
