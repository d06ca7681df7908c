"""`--locked` means something (issue 11): `run --locked` and `plan --locked` compare every task's key
with the lock, on an empty cache too, never write the lock, and an unreadable lock is reported with
its line; `verify` says `different` for an altered output hash.

On 2a2222d `run --locked` compared params and tools only: a lock whose key was edited passed, the
run went ahead and rewrote the lock; `plan --locked` did not exist; a lock with merge-conflict
markers read as "no lock"; verify had no per-artifact verdict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project, in_fresh_interpreter
from tests.e2e.test_run_cli import HEAVY_MODULES
from tests.faults.config_fuzz import run_cli_in_process

pytestmark = pytest.mark.slow


def lock_file(project: Project) -> Path:
    return project.config.with_suffix(".lock")


def edit_lock(project: Project, change: Any) -> None:
    """Rewrite the lock after `change(document)`, as a person editing it would."""
    document = json.loads(lock_file(project).read_text())
    change(document)
    lock_file(project).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def fingerprint(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_a_wrong_key_fails_run_locked_and_plan_locked_and_the_lock_is_left_alone(
    warm_project: Project,
) -> None:
    warm_project.run_json()
    # An agreeing, fully cached check imports no heavy library, like a cached run.
    probe = f"""
        import json, sys
        from trtbuild.cli import main
        statuses = [
            main(["plan", {str(warm_project.config)!r}, "--locked"]),
            main(["run", {str(warm_project.config)!r}, "--locked", "--out", {str(warm_project.out)!r}]),
        ]
        heavy = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)
        print(json.dumps({{"statuses": statuses, "heavy": heavy}}), file=sys.stderr)
        """
    completed = in_fresh_interpreter(warm_project, probe)
    assert json.loads(completed.stderr.strip().splitlines()[-1]) == {"statuses": [0, 0], "heavy": []}

    def wrong_key(document: dict[str, Any]) -> None:
        document["tasks"]["tiny/simplify"]["key"] = "0" * 64

    edit_lock(warm_project, wrong_key)
    before = fingerprint(lock_file(warm_project))
    planned = warm_project.trtbuild("plan", str(warm_project.config), "--locked")
    assert planned.returncode == 1, planned.stderr
    assert "tiny/simplify: the lock's key 000000000000 does not match its own material" in planned.stdout
    assert "tiny/export" not in planned.stdout.split("The plan differs from the lock")[1]
    locked = warm_project.trtbuild(
        "run", str(warm_project.config), "--locked", "--out", str(warm_project.out)
    )
    assert locked.returncode == 1, locked.stderr
    assert "tiny/simplify: the lock's key" in locked.stderr and "nothing ran" in locked.stderr
    assert fingerprint(lock_file(warm_project)) == before


def test_plan_locked_checks_every_key_on_an_empty_cache(warm_project: Project, tmp_path: Path) -> None:
    warm_project.run_json()
    agreeing = warm_project.trtbuild(
        "plan", str(warm_project.config), "--locked", "--json", "--cache-dir", str(tmp_path / "empty-1")
    )
    assert agreeing.returncode == 0, agreeing.stdout + agreeing.stderr
    assert json.loads(agreeing.stdout)["lock"] == {"differences": [], "notices": []}

    # A task far downstream: its key is computed with the output hashes the lock records upstream.
    def wrong_build_key(document: dict[str, Any]) -> None:
        document["tasks"]["tiny/fp32/build"]["key"] = "f" * 64

    edit_lock(warm_project, wrong_build_key)
    before = fingerprint(lock_file(warm_project))
    edited = warm_project.trtbuild(
        "plan", str(warm_project.config), "--locked", "--json", "--cache-dir", str(tmp_path / "empty-2")
    )
    assert edited.returncode == 1
    differences = json.loads(edited.stdout)["lock"]["differences"]
    assert [line.partition(":")[0] for line in differences] == ["tiny/fp32/build"], differences
    assert fingerprint(lock_file(warm_project)) == before

    warm_project.run_json()  # the lock is right again
    warm_project.edit_config("opset: 17", "opset: 18")
    changed = warm_project.trtbuild(
        "plan", str(warm_project.config), "--locked", "--cache-dir", str(tmp_path / "empty-3")
    )
    assert changed.returncode == 1
    assert "tiny/export: export.opset: 17 -> 18" in changed.stdout


def test_an_unreadable_lock_is_an_error_with_its_line_and_a_plain_run_replaces_it_loudly(
    warm_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm_project.run_json()
    lines = lock_file(warm_project).read_text().splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if '"key"' in line)
    theirs = lines[at].replace('"key": "', '"key": "ab')
    lines[at : at + 1] = ["<<<<<<< HEAD\n", lines[at], "=======\n", theirs, ">>>>>>> other-branch\n"]
    lock_file(warm_project).write_text("".join(lines))
    # Through the CLI's entry point in this process (run_cli_in_process), not an interpreter each:
    # every command stops at the lock, before any task.
    monkeypatch.chdir(warm_project.root)
    monkeypatch.setenv("TRTBUILD_CACHE_DIR", str(warm_project.cache))
    monkeypatch.delenv("TRTBUILD_DEBUG", raising=False)
    for command in (("plan", "--locked"), ("plan", "--explain"), ("run", "--locked"), ("verify",)):
        completed = run_cli_in_process([command[0], str(warm_project.config), *command[1:]])
        assert completed.status == 2, (command, completed.stderr)
        message = f"{lock_file(warm_project)}:{at + 1}:1: the lock is unreadable: git merge-conflict marker"
        assert message in completed.stderr, (command, completed.stderr)
        assert "Traceback" not in completed.stderr

    replaced = warm_project.trtbuild("run", str(warm_project.config), "--out", str(warm_project.out))
    assert replaced.returncode == 0, replaced.stderr
    assert f"note: replaced {lock_file(warm_project)} (unreadable at line {at + 1}:1" in replaced.stdout
    assert json.loads(lock_file(warm_project).read_text())["format_version"] == 3


def as_sha256_lock(document: dict[str, Any]) -> None:
    """The lock as trtbuild wrote it before BLAKE3 (format 2, keying scheme 2): bare hex hashes."""
    document["format_version"] = 2
    for entry in document["tasks"].values():
        entry["scheme"] = 2
        entry["inputs"] = {name: digest.removeprefix("blake3:") for name, digest in entry["inputs"].items()}
        for output in entry["outputs"].values():
            output["hash"] = output["hash"].removeprefix("blake3:")


def test_an_older_sha256_lock_is_read_refused_by_locked_and_verify_and_rewritten_by_a_plain_run(
    warm_project: Project,
) -> None:
    """Its sha256 hashes cannot be compared with BLAKE3 ones: every command that would compare says
    so and what to do; on 61db8bf (sha256 everywhere) there was no such lock to tell apart."""
    warm_project.run_json()
    edit_lock(warm_project, as_sha256_lock)
    older = "lock format 2 with sha256 hashes, older than 3 (BLAKE3 hashes)"
    explained = warm_project.trtbuild("plan", str(warm_project.config), "--explain", check=True)
    assert "cached" in explained.stdout
    warm_project.edit_config("opset: 17", "opset: 18")  # a task to explain, against hashes of another kind
    explained = warm_project.trtbuild("plan", str(warm_project.config), "--explain", check=True)
    assert f"{older}: a plain `trtbuild run` rewrites it" in " ".join(explained.stdout.split())
    assert "input changed" not in explained.stdout
    warm_project.edit_config("opset: 18", "opset: 17")
    locked = warm_project.trtbuild("plan", str(warm_project.config), "--locked")
    assert locked.returncode == 1
    assert older in locked.stdout and "once without --locked" in locked.stdout
    verified = warm_project.trtbuild("verify", str(warm_project.config))
    assert verified.returncode == 2, verified.stderr
    assert f"{lock_file(warm_project)}: {older}: run `trtbuild run" in verified.stderr
    assert "Traceback" not in verified.stderr + locked.stderr
    rewritten = warm_project.trtbuild("run", str(warm_project.config), "--out", str(warm_project.out))
    assert rewritten.returncode == 0, rewritten.stderr
    assert f"({older}) with a new lock" in rewritten.stdout
    assert json.loads(lock_file(warm_project).read_text())["format_version"] == 3

    lock_file(warm_project).write_text('{"format_version": 4, "tasks": {}}\n')
    newer = warm_project.trtbuild("run", str(warm_project.config), "--out", str(warm_project.out))
    assert newer.returncode == 2
    assert "lock format 4 is newer than this trtbuild reads (format 3 at most)" in newer.stderr
    assert "upgrade trtbuild" in newer.stderr
    assert lock_file(warm_project).read_text() == '{"format_version": 4, "tasks": {}}\n'


def test_verify_says_different_for_an_altered_hash_and_exits_1(warm_project: Project) -> None:
    warm_project.run_json()

    def altered(document: dict[str, Any]) -> None:
        document["tasks"]["tiny/export"]["outputs"]["model.onnx"]["hash"] = "blake3:" + "0" * 64

    edit_lock(warm_project, altered)
    before = fingerprint(lock_file(warm_project))
    completed = warm_project.trtbuild("verify", str(warm_project.config), "--json")
    assert completed.returncode == 1, completed.stderr
    verdicts = {(a["task"], a["output"]): a for a in json.loads(completed.stdout)["artifacts"]}
    export = verdicts.pop(("tiny/export", "model.onnx"))
    assert export["verdict"] == "different" and export["locked"] == "blake3:" + "0" * 64
    assert "same key" in export["reason"]
    # Downstream tasks were keyed from the real bytes, which the rebuild made again.
    assert {a["verdict"] for a in verdicts.values()} == {"identical"}
    # The cache holds export's result: plan --locked compares its output hash with the lock's too.
    planned = warm_project.trtbuild("plan", str(warm_project.config), "--locked")
    assert planned.returncode == 1
    assert (
        f"tiny/export: model.onnx: the cache has {export['rebuilt'].removeprefix('blake3:')[:12]}, "
        "tiny.lock records 000000000000" in (planned.stdout)
    )
    assert fingerprint(lock_file(warm_project)) == before


def test_keys_and_locks_are_the_same_in_two_folders_at_different_paths(
    warm_project: Project, tmp_path: Path
) -> None:
    """The same project at a short and a long path, run from inside it and from a parent folder
    with a relative config path, each with its own cache: the same keys and byte-identical locks."""
    other = tmp_path / "a-much-longer-folder-name" / "nested" / "project"
    other.mkdir(parents=True)
    for name in ("tinynet.py", "tiny.yaml"):
        (other / name).write_text((warm_project.root / name).read_text())
    second = Project(
        root=tmp_path, config=other / "tiny.yaml", cache=tmp_path / "cache-2", out=other / "build"
    )
    warm_project.run_json()
    relative = os.path.relpath(second.config, tmp_path)
    completed = second.trtbuild("run", relative, "--out", str(second.out), check=True)
    assert completed.returncode == 0
    assert lock_file(warm_project).read_bytes() == lock_file(second).read_bytes()
    first_keys = plan_keys(warm_project, str(warm_project.config))
    assert first_keys == plan_keys(second, relative)
    assert all(first_keys.values())
    text = lock_file(warm_project).read_text()
    host = os.uname().nodename
    for private in (str(tmp_path), str(Path.home()), *([host] if len(host) > 3 else [])):
        assert private not in text


def plan_keys(project: Project, config: str) -> dict[str, str]:
    planned = project.trtbuild("plan", config, "--json", check=True)
    return {task["id"]: task["key"] for task in json.loads(planned.stdout)["tasks"]}
