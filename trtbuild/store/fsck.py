"""`trtbuild fsck`'s look at the cache: every file re-hashed or re-checked, nothing trusted.

A run checks what it reads cheaply (action entries by their own digest, blobs through the stat
cache's size, mtime, ctime, inode and device, and in full when it links them). What that cannot see,
a change of content that left the metadata exactly as it was (bit rot, a tool that restores ctime
too), is found here: each blob is hashed and compared with its name, each action entry with its
digest and its blobs, each remembered config with its checksum line, each schema marker (an empty
file) with its size, each copy of a tool that builds run (toolchains/) with its manifest. With
``repair`` a bad file is removed, so the next run rebuilds or re-parses what it held; a missing file
is not corruption and is only counted by the run that misses it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trtbuild.store._fsutil import open_regular, remove_any
from trtbuild.store.action_cache import ActionCache, DamagedEntry
from trtbuild.store.hashing import digest_file
from trtbuild.store.store import Store
from trtbuild.store.toolchains import copy_damage, iter_copies
from trtbuild.store.validated import CHECKSUM_PREFIX, ParsedConfigs


@dataclass(frozen=True)
class Finding:
    """A file that is not what its name or its own checksum says."""

    path: Path
    problem: str
    kept: bool = False  # --repair could not remove it (a read-only cache)


@dataclass
class StoreCheck:
    checked: dict[str, int] = field(default_factory=dict)  # what was checked -> how many files
    findings: list[Finding] = field(default_factory=list)


def check_store(store: Store, *, repair: bool = False) -> StoreCheck:
    """Re-hash every blob and re-check every action entry, remembered config and schema marker."""
    check = StoreCheck()
    for what, findings in (
        ("blobs", _bad_blobs(store)),
        ("action entries", _bad_entries(store)),
        ("remembered configs", _bad_parsed_configs(store)),
        ("tool copies", _bad_tool_copies(store)),
    ):
        each = list(findings)
        check.checked[what] = len(each)
        for finding in each:
            if finding is not None:
                check.findings.append(_repaired(finding) if repair else finding)
    return check


def _repaired(finding: Finding) -> Finding:
    """Remove the bad file; a cache that cannot be written (a read-only mount) keeps it, and says so."""
    try:
        remove_any(finding.path)
    except OSError as error:
        return Finding(finding.path, f"{finding.problem} (not removed: {error.strerror or error})", True)
    return finding


_HEX = re.compile(r"[0-9a-f]{64}")
Checked = Iterator[Finding | None]  # per file checked: what is wrong with it, or None


def _bad_blobs(store: Store) -> Checked:
    for digest, _, _ in store.iter_blobs():
        path = store.blob_path(digest)
        try:
            actual = digest_file(path)
        except OSError as error:
            yield Finding(path, f"unreadable: {error.strerror or error}")
            continue
        if actual == digest or _older_blob(path):
            yield None
        else:
            yield Finding(path, f"its content hashes to {actual}")


def _older_blob(path: Path) -> bool:
    """Whether the file is an older trtbuild's blob, named by the sha256 of its content: no entry
    of this one names it (gc removes it), and it is not damage (cas.py). Hashed again only for a
    blob that failed BLAKE3, so a healthy cache pays nothing for it."""
    hasher = hashlib.sha256()
    try:
        with open(open_regular(path), "rb") as stream:
            while chunk := stream.read(1 << 20):
                hasher.update(chunk)
    except OSError:
        return False
    return hasher.hexdigest() == path.name


def _bad_entries(store: Store) -> Checked:
    entries = ActionCache(store.root / "ac", store.root / "tmp")
    for key in store.iter_action_keys():
        path = entries.path(key)
        try:
            result, _ = entries.read(key)
        except DamagedEntry as damaged:
            yield Finding(path, f"damaged action entry: {damaged}")
            continue
        problem = None
        for name, digest in (result.outputs if result is not None else {}).items():
            try:
                size = os.stat(store.blob_path(digest.hash)).st_size
            except OSError:
                problem = f"its output {name}'s blob {digest.hash} is not in the cache"
                break
            if size != digest.size:
                problem = f"its output {name}'s blob has {size} bytes, the entry says {digest.size}"
                break
        yield None if problem is None else Finding(path, problem)


def _bad_tool_copies(store: Store) -> Checked:
    """Copies of tools that builds run (toolchains/), re-hashed against their manifests; --repair
    removes a bad one, and the next build makes it again."""
    for copy in iter_copies(store.toolchains_dir):
        damage = copy_damage(copy)
        yield None if damage is None else Finding(copy, f"a copy of a tool builds run: {damage}")


def _bad_parsed_configs(store: Store) -> Checked:
    """Remembered configs whose checksum line does not match, and schema markers that are not empty."""
    parsed = ParsedConfigs(store.root / "validated", store.root / "tmp")
    folder = store.root / "validated"
    paths = sorted(p for p in folder.glob("*/*") if p.is_file()) if folder.is_dir() else []
    for path in paths:
        if path.suffix == ".json":
            with open(path, "rb") as stream:
                if not stream.read(len(CHECKSUM_PREFIX)).startswith(CHECKSUM_PREFIX):
                    yield None  # an older trtbuild's (no checksum line): a miss, re-parsed
                    continue
            intact = _HEX.fullmatch(path.stem) is not None and parsed.get(path.stem) is not None
            yield None if intact else Finding(path, "its checksum line does not match its content")
        else:
            empty = path.stat().st_size == 0
            yield None if empty else Finding(path, "a schema marker that is not empty")
