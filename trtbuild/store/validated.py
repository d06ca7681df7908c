"""Digests of config documents that passed schema validation, kept so that an unchanged config is not
validated (nor jsonschema imported) again on the next run.

One empty marker file per digest under ``validated/<first 2 hex>/``. Markers are only ever added;
losing them costs one validation. Whoever can write the cache can plant one, and so make a run skip
the schema check of the document with that digest: the same trust as the action cache, whose entries
decide far more.
"""

from __future__ import annotations

import re
from pathlib import Path

from trtbuild.files import write_atomic

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ValidatedDocuments:
    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = root
        self._tmp = tmp_dir

    def _marker(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, str) and bool(_DIGEST.match(digest)) and self._marker(digest).is_file()

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
