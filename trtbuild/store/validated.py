"""Digests of config documents that passed schema validation, kept so that an unchanged config is not
validated (nor jsonschema imported) again on the next run.

One empty marker file per digest under ``validated/<first 2 hex>/``; a hit refreshes its mtime (hourly), and
`trtbuild gc` removes markers unused for a day (losing one costs one validation). Whoever can write
the cache can plant one, and so make a run skip the schema check of the document with that digest:
the same trust as the action cache, whose entries decide far more. `--no-cache` reads no marker.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from trtbuild.files import write_atomic
from trtbuild.store._fsutil import open_regular

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
CHECKSUM_PREFIX = b"named-sha256:"  # a remembered config's first line (ParsedConfigs)
MARK_USED_AFTER_S = 3600.0


class ValidatedDocuments:
    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = root
        self._tmp = tmp_dir

    def _marker(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def __contains__(self, digest: object) -> bool:
        """Whether `digest` passed before. A marker that cannot be read counts as absent (the document
        is validated again); a hit marks the marker used, where the cache is writable."""
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            return False
        marker = self._marker(digest)
        try:
            st = os.stat(marker)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != 0:  # a marker is empty: anything else is damage
            return False
        # gc drops markers unused for a day: marking one used at most hourly keeps it, and a no-op run
        # writes nothing.
        if time.time() - st.st_mtime > MARK_USED_AFTER_S:
            with contextlib.suppress(OSError):
                os.utime(marker)
        return True

    def add(self, digest: str) -> None:
        """Best effort: a cache that cannot be written only means validating again next time."""
        if not _DIGEST.match(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        marker = self._marker(digest)
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
            write_atomic(marker, b"", temp_dir=self._tmp, fsync=False)
        except OSError:
            pass

    def iter_markers(self) -> Iterator[tuple[Path, float]]:
        """(path, mtime) of every marker, for gc; unreadable entries are skipped."""
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            try:
                entries = sorted(shard.iterdir()) if shard.is_dir() else []
            except OSError:
                continue
            for marker in entries:
                try:
                    yield marker, marker.lstat().st_mtime
                except OSError:
                    continue


class ParsedConfigs:
    """Configs parsed before (spec/yamlmarks.py), as JSON under the digest of their bytes: files
    ``<digest>.json`` beside the schema markers, with their lifetime (a hit marks one used hourly;
    gc drops those unused for a day) and their trust (whoever can write the cache decides what an
    unchanged config reads as, as its action entries decide what a key maps to).

    Each file starts with a line ``named-sha256:<hex>`` of its own name's digest and the rest,
    checked on every read: a flipped byte, a cut-off write or another config's file copied or
    swapped into this one's name is a miss (the config is parsed again), never another config's
    content. Files without that line (an older trtbuild's, whose ``sha256:`` line covered only the
    content) are misses too, and rewritten."""

    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = root
        self._tmp = tmp_dir

    def _path(self, digest: str) -> Path:
        if not _DIGEST.match(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> bytes | None:
        path = self._path(digest)
        try:
            with open(open_regular(path), "rb") as stream:
                st = os.fstat(stream.fileno())
                header, data = stream.readline(), stream.read()
        except OSError:
            return None
        if header != _checksum_line(digest, data):
            return None
        if time.time() - st.st_mtime > MARK_USED_AFTER_S:
            with contextlib.suppress(OSError):
                os.utime(path)
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Best effort: a cache that cannot be written only means parsing again next time."""
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(parents=True, exist_ok=True)
            write_atomic(path, _checksum_line(digest, data) + data, temp_dir=self._tmp, fsync=False)
        except OSError:
            pass


def _checksum_line(digest: str, data: bytes) -> bytes:
    """The checksum covers the name too: a remembered parse is the parse of exactly one config."""
    checksum = hashlib.sha256(digest.encode() + b"\n" + data).hexdigest()
    return CHECKSUM_PREFIX + checksum.encode() + b"\n"
