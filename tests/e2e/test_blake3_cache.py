"""A cache that an older trtbuild wrote (sha256 hex digests, blobs named by them) is a miss that
rebuilds, never a crash nor a hit: here its entries even sit at today's keys, the worst case (an
older trtbuild's keys are of keying scheme 2 and are not looked up at all).

On 61db8bf such entries were hits: that trtbuild wrote them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.conftest import Project, states

pytestmark = pytest.mark.slow


def as_sha256_cache(cache: Path) -> int:
    """Rewrite every action entry and its blobs as 61db8bf stored them; the number of entries."""
    entries = sorted((cache / "ac").rglob("*.json"))
    for entry in entries:
        document = json.loads(entry.read_text())
        for output in document["outputs"].values():
            name = output["hash"].removeprefix("blake3:")
            content = (cache / "cas" / name[:2] / name).read_bytes()
            sha = hashlib.sha256(content).hexdigest()
            (cache / "cas" / sha[:2]).mkdir(exist_ok=True)
            (cache / "cas" / sha[:2] / sha).write_bytes(content)
            output["hash"] = sha
        os.chmod(entry, 0o644)
        entry.write_text(json.dumps(document, sort_keys=True))
    return len(entries)


def test_an_older_sha256_cache_is_a_miss_that_rebuilds(tiny_project: Project) -> None:
    first = tiny_project.run_json()
    assert set(states(first).values()) == {"ran"}
    assert as_sha256_cache(tiny_project.cache) == len(first["tasks"])

    again = tiny_project.run_json()
    assert states(again) == states(first), "an entry with sha256 digests was taken as a hit"
    lock = json.loads(tiny_project.config.with_suffix(".lock").read_text())
    hashes = [output["hash"] for task in lock["tasks"].values() for output in task["outputs"].values()]
    assert hashes and all(digest.startswith("blake3:") for digest in hashes)
    assert set(states(tiny_project.run_json()).values()) == {"cached"}
