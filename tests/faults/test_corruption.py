"""The corruption matrix (issue 13): every kind of cache file and output file, damaged every way.

The tiny model is built once; each case copies the project and its cache (`cp -a`, which keeps
build/'s hard links to the blobs), damages one file, and runs `trtbuild run`. A case passes when the
run rebuilds correctly (exit 0, every output the lock's bytes, and `fsck` finding nothing after
it) or fails clearly (exit 1 or 2, no traceback), never exits 0 with a wrong output. Where a run
cannot see the damage by design (content changed with every stat field unchanged), `fsck` must
name it. Every case that damages content `fsck` checks is also checked to be named by `fsck`
before the run. The last test asserts 100% detection and prints the count.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TINY_CONFIG, TINY_MODEL, Project
from trtbuild.store.hashing import STAT_CACHE_NAME, StatCache, digest_file

pytestmark = pytest.mark.slow

TASKS = ("export", "simplify", "probe", "reference", "fp32/precision", "fp32/build", "fp32/validate")
ARTIFACTS = {"model.engine": "fp32/build", "engine.json": "fp32/build", "validation.json": "fp32/validate"}
OUTCOMES: dict[str, str] = {}  # case -> how it was detected, filled by the cases, read by the summary


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    base = tmp_path_factory.mktemp("built")
    root = base / "project"
    root.mkdir()
    (root / "tinynet.py").write_text(TINY_MODEL)
    (root / "tiny.yaml").write_text(TINY_CONFIG)
    project = Project(root, root / "tiny.yaml", base / "cache", root / "build")
    assert cli(project, "run").returncode == 0
    return project


def cli(project: Project, verb: str, *args: str) -> subprocess.CompletedProcess[str]:
    completed = project.trtbuild(verb, str(project.config), "--out", str(project.out), *args)
    assert "Traceback" not in completed.stderr and "internal error" not in completed.stderr, completed.stderr
    return completed


def lock_tasks(project: Project) -> dict:
    return json.loads(project.config.with_suffix(".lock").read_text())["tasks"]


# -- what is damaged ---------------------------------------------------------------------------------
def entry(task: str) -> Callable[[Project], Path]:
    def find(project: Project) -> Path:
        key = lock_tasks(project)[f"tiny/{task}"]["key"]
        return project.cache / "ac" / key[:2] / f"{key}.json"

    return find


def blob(task: str) -> Callable[[Project], Path]:
    def find(project: Project) -> Path:
        outputs = lock_tasks(project)[f"tiny/{task}"]["outputs"]
        digest = outputs[sorted(outputs)[0]]["hash"].removeprefix("blake3:")
        return project.cache / "cas" / digest[:2] / digest

    return find


def in_cache(pattern: str) -> Callable[[Project], Path]:
    def find(project: Project) -> Path:
        found = sorted(p for p in project.cache.glob(pattern) if p.is_file())
        assert found, pattern
        return found[0]

    return find


def output(name: str) -> Callable[[Project], Path]:
    return lambda project: project.out / "tiny" / "fp32" / name


def the_lock(project: Project) -> Path:
    return project.config.with_suffix(".lock")


# -- how it is damaged -------------------------------------------------------------------------------
def rewrite(path: Path, data: bytes, *, keep_mtime: bool) -> None:
    st = path.stat()
    os.chmod(path, 0o644)
    with open(path, "r+b") as stream:  # in place: the same inode, as bit rot or an editor's write
        stream.write(data)
        stream.truncate()
    os.chmod(path, st.st_mode)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def flip(path: Path, *, keep_mtime: bool = False) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    rewrite(path, bytes(data), keep_mtime=keep_mtime)


def flip_keeping_mtime(path: Path) -> None:
    flip(path, keep_mtime=True)


def truncate(path: Path) -> None:
    rewrite(path, path.read_bytes()[: path.stat().st_size // 2], keep_mtime=False)


def edit_json(path: Path) -> None:
    """A valid-JSON edit: a field renamed (the issue's `"failures"` -> `"failurez"`)."""
    data = path.read_bytes()
    header, body = data.split(b"\n", 1) if data.startswith(b"named-sha256:") else (b"", data)
    document = json.loads(body)
    target = document.get("meta", document.get("document", document))
    name = sorted(target)[0]
    target[name + "z"] = target.pop(name)
    text = json.dumps(document, indent=2, sort_keys=True).encode()
    rewrite(path, header + b"\n" + text if header else text, keep_mtime=True)


def replace(path: Path) -> None:
    """Another file in its place (a new inode): `cp other.engine build/.../model.engine`."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0x01]))


def fill_marker(path: Path) -> None:
    rewrite(path, b"x", keep_mtime=True)


HASHED = "files hashed again (a damaged stat cache is bypassed or its rows fail their checksum)"
PARSED = "config parsed again (checksum line)"
RELINKED = "relinked from the cache (build/ files that are not the blob are replaced)"
RELOCKED = "lock rewritten by the successful run"


@dataclass(frozen=True)
class Case:
    name: str
    target: Callable[[Project], Path]
    damage: Callable[[Path], None]
    fsck_sees: bool = False  # fsck checks this file's content: it must name it before the run
    warm: bool = False  # run once first, so the stat cache knows the copy's files (the normal path)
    quietly: str = ""  # what a run does with it unasked, if it need not warn (else it must warn)


CASES = [
    # Entries are checked by their digest whatever the damage: a valid-JSON edit (the hardest) of
    # each kind's, flips and a truncation of the two cheapest to rebuild (CI time).
    *(Case(f"entry {t}: valid-JSON edit", entry(t), edit_json, fsck_sees=True) for t in TASKS),
    *(Case(f"entry {t}: flipped byte", entry(t), flip_keeping_mtime, fsck_sees=True) for t in TASKS[-2:]),
    Case("entry fp32/validate: truncated", entry("fp32/validate"), truncate, fsck_sees=True),
    # A flip with the mtime restored is the hardest blob case (a plain flip changes the mtime too).
    *(Case(f"blob {t}: flip, mtime restored", blob(t), flip_keeping_mtime, True, True) for t in TASKS),
    Case("blob fp32/build: truncated", blob("fp32/build"), truncate, fsck_sees=True),
    Case("stat cache: flipped byte", in_cache(STAT_CACHE_NAME), flip, warm=True, quietly=HASHED),
    Case("stat cache: truncated", in_cache(STAT_CACHE_NAME), truncate, warm=True, quietly=HASHED),
    Case(
        "remembered config: flipped byte",
        in_cache("validated/*/*.json"),
        flip_keeping_mtime,
        True,
        quietly=PARSED,
    ),
    Case(
        "remembered config: valid-JSON edit", in_cache("validated/*/*.json"), edit_json, True, quietly=PARSED
    ),
    Case(
        "schema marker: not empty",
        in_cache("validated/*/[0-9a-f]*[0-9a-f]"),
        fill_marker,
        quietly="validated again",
    ),
    Case("GC root: flipped byte", in_cache("roots/*.json"), flip, quietly="rewritten (only gc reads it)"),
    *(Case(f"build/ {name}: replaced", output(name), replace, True, quietly=RELINKED) for name in ARTIFACTS),
    Case(
        "build/ validation.json: flip, mtime restored",
        output("validation.json"),
        flip_keeping_mtime,
        True,
        True,
    ),
    Case("lock: flipped byte", the_lock, flip, quietly=RELOCKED),
    Case("lock: truncated", the_lock, truncate, quietly=RELOCKED),
]


def copy_of(project: Project, tmp_path: Path) -> Project:
    subprocess.run(["cp", "-a", f"{project.root.parent}/.", str(tmp_path)], check=True)
    root = tmp_path / "project"
    return Project(root, root / "tiny.yaml", tmp_path / "cache", root / "build")


def outputs_are_the_locks(project: Project) -> None:
    """Every file under build/ is the bytes the lock records, and so is every task's output in the
    cache (the intermediate ones included: the next task reads them)."""
    locked = lock_tasks(project)
    for name, task in ARTIFACTS.items():
        expected = locked[f"tiny/{task}"]["outputs"][name]["hash"]
        assert digest_file(project.out / "tiny" / "fp32" / name) == expected, name
    for task, entry in locked.items():
        for name, recorded in entry["outputs"].items():
            digest = recorded["hash"].removeprefix("blake3:")
            blob = project.cache / "cas" / digest[:2] / digest
            assert digest_file(blob) == recorded["hash"], f"{task}'s {name}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_damage_is_rebuilt_or_fails_clearly_never_used(built: Project, tmp_path: Path, case: Case) -> None:
    project = copy_of(built, tmp_path)
    if case.warm:
        assert cli(project, "run").returncode == 0
    before = lock_tasks(project)
    case.damage(case.target(project))
    if case.fsck_sees:
        found = cli(project, "fsck")
        assert found.returncode == 1 and f"bad: {case.target(project)}" in found.stderr, found.stderr
    completed = cli(project, "run")
    assert completed.returncode in (0, 1, 2), completed.stderr
    if completed.returncode == 0:
        outputs_are_the_locks(project)
        after = lock_tasks(project)
        assert {t: e["key"] for t, e in after.items()} == {t: e["key"] for t, e in before.items()}
        assert cli(project, "fsck").returncode == 0  # nothing damaged is left behind
    warned = "cannot be trusted" in completed.stderr
    assert warned or completed.returncode or case.quietly, "used without a word: " + completed.stderr
    OUTCOMES[case.name] = (
        f"failed clearly (exit {completed.returncode})"
        if completed.returncode
        else ("rebuilt with a warning" if warned else case.quietly)
    )


def test_what_no_metadata_shows_is_found_by_fsck(built: Project, tmp_path: Path) -> None:
    """Bit rot: content changed with size, mtime, ctime, inode and device as the stat cache recorded
    them (simulated by recording the flipped blob's stat against its old digest). A run trusts the
    stat cache there, by design; fsck re-hashes and names the blob and the output linked to it, and
    --repair removes them so that the next run rebuilds."""
    project = copy_of(built, tmp_path)
    assert cli(project, "run").returncode == 0
    digest = lock_tasks(project)["tiny/fp32/build"]["outputs"]["model.engine"]["hash"]
    path = project.cache / "cas" / digest[7:9] / digest[7:]
    flip_keeping_mtime(path)
    StatCache(project.cache / STAT_CACHE_NAME).record(path, path.stat(), digest)
    found = cli(project, "fsck")
    assert found.returncode == 1
    assert f"bad: {path}" in found.stderr, found.stderr
    assert f"bad: {output('model.engine')(project)}" in found.stderr, found.stderr
    assert cli(project, "fsck", "--repair").returncode == 1  # removes them: the next run rebuilds
    assert cli(project, "run").returncode == 0
    outputs_are_the_locks(project)
    assert cli(project, "fsck").returncode == 0
    OUTCOMES["blob fp32/build: flip with no metadata change"] = "found by fsck"


def test_every_case_was_detected() -> None:
    expected = len(CASES) + 1
    print(f"\ncorruption matrix: {len(OUTCOMES)} of {expected} cases detected or harmless, none used:")
    for name, outcome in sorted(OUTCOMES.items()):
        print(f"  {name}: {outcome}")
    assert len(OUTCOMES) == expected
