"""Copies of tools the cache keeps (`toolchains/`: the TensorRT packages a build runs, at a fixed-length
path, backends/trt/recipe.py) and the manifest that lets every use check them.

Each copy is a folder; beside it (not in it: anything added to the folder a builder runs from may
change its engines' bytes) lies ``<folder>.manifest.json``: every file's BLAKE3 digest and a
checksum of that list. A build re-hashes the copy against it before running it (~0.1 s of CPU for
TensorRT-RTX's 240 MB); `trtbuild fsck` does the same for every copy. Without it, an edited or
rotten library or script in the cache was run by every build and its engines cached and locked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from trtbuild.files import write_atomic
from trtbuild.store.hashing import digest_file

MANIFEST_SUFFIX = ".manifest.json"


def manifest_path(copy: Path) -> Path:
    return copy.parent / (copy.name + MANIFEST_SUFFIX)


def _files(copy: Path) -> dict[str, Path]:
    return {
        str(path.relative_to(copy)): path
        for path in sorted(copy.rglob("*"))
        if not path.is_dir() and "__pycache__" not in path.parts
    }


def _checksum(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def write_manifest(copy: Path, destination: Path) -> None:
    """Each file of `copy` (a staging folder about to be renamed into place) and its digest."""
    files = {name: digest_file(path) for name, path in _files(copy).items()}
    text = json.dumps({"files": files, "checksum": _checksum(files)})
    write_atomic(destination, text.encode(), temp_dir=destination.parent)


def copy_damage(copy: Path) -> str | None:
    """What is wrong with a copy, or None: every file re-hashed against its manifest."""
    try:
        doc = json.loads(manifest_path(copy).read_bytes())
        files = doc["files"]
        if doc["checksum"] != _checksum(files):
            return "its manifest does not match its checksum"
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        return f"no readable manifest ({type(error).__name__})"
    found = _files(copy)
    if sorted(found) != sorted(files):
        return f"files added or missing: {sorted(set(found) ^ set(files))[:3]}"
    for name, path in found.items():
        try:
            if digest_file(path) != files[name]:
                return f"{name} changed"
        except OSError as error:
            return f"{name} unreadable ({error.strerror})"
    return None


def iter_copies(toolchains: Path) -> Iterator[Path]:
    """Every complete copy: `toolchains/<tool>-<version>-<identity>/<padded folder>` (staging
    folders, which start with a dot, are copies still being made or set aside)."""
    if not toolchains.is_dir():
        return
    for tool in sorted(toolchains.iterdir()):
        if tool.is_dir():
            for copy in sorted(tool.iterdir()):
                if copy.is_dir() and not copy.name.startswith("."):
                    yield copy
