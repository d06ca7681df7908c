"""A cache that cannot lie (issue 13, defects 1-3): every byte a run decides from is checked.

Each test reproduces a symptom seen on 7722d02: a one-byte edit of an action entry turned a failed
gate into a pass; valid-JSON edits of entries crashed every run ("internal error: KeyError"); a
flipped blob byte with its mtime restored passed `run` and `verify`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TINY_CONFIG, TINY_MODEL, Project
from trtbuild.store.action_cache import entry_digest
from trtbuild.store.hashing import digest_file

pytestmark = pytest.mark.slow

FAILING = TINY_CONFIG.replace("fp32: {atol: 1.0e-4, rtol: 1.0e-3}", "fp32: {cosine: 1.0, atol: 1.0e-30}")


def make_project(base: Path, config: str) -> Project:
    root = base / "project"
    root.mkdir(parents=True)
    (root / "tinynet.py").write_text(TINY_MODEL)
    (root / "tiny.yaml").write_text(config)
    return Project(root=root, config=root / "tiny.yaml", cache=base / "cache", out=root / "build")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The tiny model built once (passing its gate); each test works on a copy."""
    project = make_project(tmp_path_factory.mktemp("built"), TINY_CONFIG)
    run(project, expect=0)
    return project


def copy_of(project: Project, tmp_path: Path) -> Project:
    """The project and its cache copied together (`cp -a` keeps build/'s hard links to the blobs);
    one no-op run fills the stat cache for the copy's paths, as a user's earlier runs would have."""
    subprocess.run(["cp", "-a", f"{project.root.parent}/.", str(tmp_path)], check=True)
    copy = Project(
        tmp_path / "project",
        tmp_path / "project" / "tiny.yaml",
        tmp_path / "cache",
        tmp_path / "project" / "build",
    )
    run(copy, expect=0)
    return copy


def run(project: Project, *args: str, expect: int, verb: str = "run") -> subprocess.CompletedProcess[str]:
    extra = ["--out", str(project.out)] if verb in ("run", "fsck") else []
    completed = project.trtbuild(verb, str(project.config), *extra, *args)
    assert completed.returncode == expect, completed.stdout + completed.stderr
    assert "internal error" not in completed.stderr and "Traceback" not in completed.stderr
    return completed


def lock_of(project: Project) -> dict:
    return json.loads(project.config.with_suffix(".lock").read_text())


def entry_path(project: Project, task: str, key: str | None = None) -> Path:
    key = key or lock_of(project)["tasks"][task]["key"]
    return project.cache / "ac" / key[:2] / f"{key}.json"


def edit_entry(path: Path, old: str, new: str, *, redigest: bool = False) -> None:
    """Replace text in an action entry; with `redigest` also write the digest of the edited content
    (a writer the cache trusts, or a bug: what only a check of the artifacts themselves can catch)."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    text = text.replace(old, new)
    if redigest:
        doc = json.loads(text)
        doc["digest"] = entry_digest(doc, path.stem)
        text = json.dumps(doc, sort_keys=True, indent=2)
    os.chmod(path, 0o644)
    path.write_text(text)


def flip_byte_keeping_mtime(path: Path) -> None:
    st = path.stat()
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    with open(path, "r+b") as stream:
        stream.write(data)
    os.chmod(path, st.st_mode)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def blob_of(project: Project, digest: str) -> Path:
    hex_ = digest.removeprefix("blake3:")
    return project.cache / "cas" / hex_[:2] / hex_


def outputs_match_the_lock(project: Project) -> None:
    """Every file under build/<model>/<cell>/ hashes to what the lock (and so the cache) records."""
    lock = lock_of(project)["tasks"]
    recorded = {
        "model.engine": lock["tiny/fp32/build"]["outputs"]["model.engine"]["hash"],
        "engine.json": lock["tiny/fp32/build"]["outputs"]["engine.json"]["hash"],
        "validation.json": lock["tiny/fp32/validate"]["outputs"]["validation.json"]["hash"],
    }
    for name, digest in recorded.items():
        assert digest_file(project.out / "tiny" / "fp32" / name) == digest, name


def test_a_renamed_failures_field_does_not_turn_a_failed_gate_into_a_pass(tmp_path: Path) -> None:
    """Defect 1: `"failures": [` -> `"failurez": [` in the validate entry made the next run exit 0
    and write the lock while its summary said "validation failed"."""
    project = make_project(tmp_path, FAILING)
    run(project, expect=1)
    entry = entry_path(project, "", key=_validate_key(project))
    edit_entry(entry, '"failures": [', '"failurez": [')
    completed = run(project, expect=1)
    assert "tiny/fp32/validate: the cache's result cannot be trusted" in completed.stderr
    assert not project.config.with_suffix(".lock").exists()
    # Even an entry whose digest matches its edited metadata (passed, no failures) passes nothing:
    # the verdict comes from the hash-checked validation.json.
    entry = entry_path(project, "", key=_validate_key(project))
    edit_entry(entry, '"verdict": "failed"', '"verdict": "passed"', redigest=True)
    edit_entry(entry, '"failures": [', '"failurez": [', redigest=True)
    completed = run(project, expect=1)
    assert "validation failed" in completed.stdout
    assert not project.config.with_suffix(".lock").exists()


def _validate_key(project: Project) -> str:
    document = json.loads(run(project, "--json", expect=1).stdout)
    (task,) = [t for t in document["tasks"] if t["kind"] == "validate"]
    return str(task["key"])


def test_an_entry_copied_to_another_keys_path_is_damaged(built: Project, tmp_path: Path) -> None:
    """An entry is only valid under the key it was written for: the passing gate's entry, copied
    over the failing gate's (valid JSON, a matching digest of its own content, hash-checked blobs),
    must not pass the failing cell."""
    project = copy_of(built, tmp_path)
    passing = entry_path(project, "tiny/fp32/validate")
    project.config.write_text(FAILING)
    failing = entry_path(project, "", key=_validate_key(project))
    assert failing != passing
    os.chmod(failing, 0o644)
    shutil.copyfile(passing, failing)
    completed = run(project, expect=1)
    assert "tiny/fp32/validate: the cache's result cannot be trusted" in completed.stderr
    assert "validation failed" in completed.stdout


@pytest.mark.parametrize(
    ("task", "old", "new"),
    [
        ("tiny/fp32/build", '"engine.json"', '"engine.jsoN"'),
        ("tiny/fp32/validate", '"verdict": "passed"', '"verdict": "passec"'),
    ],
)
def test_a_valid_json_edit_of_an_entry_is_a_miss_with_a_warning(
    built: Project, tmp_path: Path, task: str, old: str, new: str
) -> None:
    """Defect 3: these edits gave "internal error: KeyError" on every `run` and `plan` until the
    entry was deleted. Now: one warning naming the task, which runs again."""
    project = copy_of(built, tmp_path)
    edit_entry(entry_path(project, task), old, new)
    planned = run(project, verb="plan", expect=0)
    assert f"{task}: the cache's result cannot be trusted" in planned.stderr
    completed = run(project, "--json", expect=0)
    assert {t["id"]: t["state"] for t in json.loads(completed.stdout)["tasks"]}[task] == "ran"
    outputs_match_the_lock(project)


def test_an_entry_naming_other_outputs_than_its_kind_is_a_miss(built: Project, tmp_path: Path) -> None:
    """Even with a digest that matches, an entry must name exactly the outputs its kind declares."""
    project = copy_of(built, tmp_path)
    edit_entry(entry_path(project, "tiny/fp32/build"), '"engine.json"', '"engine.jsoN"', redigest=True)
    completed = run(project, expect=0)
    assert "tiny/fp32/build: the cache's result cannot be trusted, its action entry names outputs" in (
        completed.stderr
    )
    outputs_match_the_lock(project)


def test_a_flipped_blob_byte_with_its_mtime_restored_is_rebuilt(built: Project, tmp_path: Path) -> None:
    """Defect 2: with its mtime restored, the flip passed `run` (exit 0, build/…/model.engine no
    longer hashing to its name) and `verify`. The stat cache keys on ctime too, which utime cannot
    restore: the run re-hashes the blob, drops it and rebuilds."""
    project = copy_of(built, tmp_path)
    engine = lock_of(project)["tasks"]["tiny/fp32/build"]["outputs"]["model.engine"]["hash"]
    flip_byte_keeping_mtime(blob_of(project, engine))
    completed = run(project, expect=0)
    outputs_match_the_lock(project)  # on 7722d02: model.engine is not the lock's bytes
    assert "tiny/fp32/build: the cache's result cannot be trusted, its output model.engine" in (
        completed.stderr
    )
    run(project, verb="fsck", expect=0)
