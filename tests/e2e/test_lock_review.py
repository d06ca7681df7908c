"""Fixes from an adversarial review of the lock (issue 11), each shown failing on 64a0d54.

- Configs that share tasks got wrong locks depending on the command line: a shared task carried only
  the first config's model, so `run tiny.yaml b.yaml` wrote b.lock with `"tasks": {}` (and
  `plan --locked` agreed with it), and `run tiny.yaml b.yaml --locked` against b.lock written alone
  failed ("tinyb/export: in b.lock but no longer planned").
- gc freed everything a committed lock needs when the cache only ever ran it with --locked.
- `verify` said "All 8 artifacts are identical to the lock: the build is reproducible." (exit 0)
  while `plan --locked` rejected the same checkout ("tiny/export: input changed: tinynet.py").
- A lock entry with a malformed field was read as usable: "internal error: TypeError: 'NoneType'
  object is not iterable" once a key differed, or a check that passed.
- `--locked` accepted a lock whose recorded params or tools contradict its key.
- A key that cannot be computed from the lock (an upstream output it does not record) was skipped.
- A directory where the lock goes ended a plain run in "internal error: IsADirectoryError", after
  building everything; `run --locked --json` printed nothing on stdout when the check failed; after
  a lock difference found post-run, the summary said to "fix the cause and run again".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_CONFIG, Project
from tests.e2e.test_locked import edit_lock, fingerprint, lock_file
from tests.faults.config_fuzz import run_cli_in_process

pytestmark = pytest.mark.slow

# Two cells that share export, simplify, probe and precision; a build and a validate each.
MATRIX_CONFIG = TINY_CONFIG.replace(
    "build:\n  targets: [SM89]\n", "matrix:\n  build.targets: [[SM89], [SM86]]\n"
)


def test_each_configs_lock_holds_all_its_tasks_whatever_else_is_on_the_command_line(
    tiny_project: Project, tmp_path: Path
) -> None:
    """b.yaml is tiny.yaml under another model name (every task shared); c.yaml also changes the
    profile (export, simplify and precision shared). A lock is the same whether its config runs alone
    or with others, in any order, and agrees with `plan --locked` and `verify` in every combination."""
    root = tiny_project.root
    assert MATRIX_CONFIG != TINY_CONFIG
    configs = {
        "tiny.yaml": MATRIX_CONFIG,
        "b.yaml": MATRIX_CONFIG.replace("name: tiny", "name: tinyb"),
        "c.yaml": MATRIX_CONFIG.replace("name: tiny", "name: tinyc").replace("max: [4,", "max: [8,"),
    }
    assert configs["c.yaml"].count("max: [8,") == 1
    for name, text in configs.items():
        (root / name).write_text(text)
    alone = {}
    for name in configs:
        tiny_project.trtbuild("run", name, check=True)
        alone[name] = (root / name).with_suffix(".lock").read_bytes()
    assert len(json.loads(alone["b.yaml"])["tasks"]) == 9
    assert "tinyc/export" in json.loads(alone["c.yaml"])["tasks"]

    for combination in (["tiny.yaml", "b.yaml"], ["tiny.yaml", "c.yaml"], ["c.yaml", "tiny.yaml"]):
        for name in combination:
            (root / name).with_suffix(".lock").unlink()
        tiny_project.trtbuild("run", *combination, check=True)
        for name in combination:
            assert (root / name).with_suffix(".lock").read_bytes() == alone[name], (combination, name)
        planned = tiny_project.trtbuild("plan", *combination, "--locked", check=True)
        assert "The plan agrees with the lock." in planned.stdout, combination
        tiny_project.trtbuild("run", *combination, "--locked", check=True)

    # On an empty cache the keys come from each lock's own upstream hashes, under its own ids.
    empty = tiny_project.trtbuild("plan", "c.yaml", "b.yaml", "--locked", "--cache-dir", str(tmp_path / "e"))
    assert empty.returncode == 0 and "The plan agrees with the lock." in empty.stdout, empty.stdout
    verified = tiny_project.trtbuild("verify", "c.yaml", "tiny.yaml", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    document = json.loads(verified.stdout)
    assert document["key_differences"] == []
    assert {a["task"] for a in document["artifacts"]} >= {
        "tinyc/export",
        "tiny/export",
        "tiny/SM89/precision",
    }
    assert {a["verdict"] for a in document["artifacts"]} == {"identical"}


def test_a_run_locked_that_agrees_makes_gc_keep_what_the_lock_needs(
    warm_project: Project, tmp_path: Path
) -> None:
    warm_project.run_json()  # writes the lock, as the one who commits it does
    fresh = Project(warm_project.root, warm_project.config, tmp_path / "fresh-cache", warm_project.out)
    fresh.trtbuild("run", str(fresh.config), "--locked", "--out", str(fresh.out), check=True)
    collected = fresh.trtbuild(
        "gc", "--keep-last", "0", "--max-age", "0", "--grace", "0", "--json", check=True
    )
    report = json.loads(collected.stdout)
    tasks = len(json.loads(lock_file(fresh).read_text())["tasks"])
    assert (report["locks_kept"], report["actions_kept"], report["actions_removed"]) == (1, tasks, 0), report
    planned = fresh.trtbuild("plan", str(fresh.config), "--locked", check=True)
    assert "Everything is cached." in planned.stdout


def test_verify_checks_the_keys_before_rebuilding_and_exits_1_on_a_difference(warm_project: Project) -> None:
    warm_project.run_json()
    before = fingerprint(lock_file(warm_project))
    with (warm_project.root / "tinynet.py").open("a") as source:
        source.write("# a comment: the exported graph is the same, the key is not\n")
    completed = warm_project.trtbuild("verify", str(warm_project.config), "--json")
    assert completed.returncode == 1, completed.stderr
    document = json.loads(completed.stdout)
    assert "tiny/export: input changed: tinynet.py" in document["key_differences"]
    # The verdicts stay about bytes: the rebuild made the lock's bytes.
    assert {a["verdict"] for a in document["artifacts"]} == {"identical"}
    assert fingerprint(lock_file(warm_project)) == before


MALFORMED = [
    ("tiny/export", "tools", None, "`tools` is null, not an object"),
    ("tiny/simplify", "inputs", [], "`inputs` is a list, not an object of {input: content hash}"),
    ("tiny/fp32/build", "cells", 7, "`cells` is 7, not a list of cell names"),
]


def test_a_malformed_lock_entry_is_an_unreadable_lock_for_every_command(
    warm_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm_project.run_json()
    good = lock_file(warm_project).read_text()
    # A key that differs too: on 64a0d54 comparing the material is what crashed.
    with (warm_project.root / "tinynet.py").open("a") as source:
        source.write("# edited\n")
    # The 12 commands go through the CLI's entry point in this process (as the fuzz tests do), not
    # 12 interpreters: each stops at the lock, before any task, and says so on stderr.
    monkeypatch.chdir(warm_project.root)
    monkeypatch.setenv("TRTBUILD_CACHE_DIR", str(warm_project.cache))
    monkeypatch.delenv("TRTBUILD_DEBUG", raising=False)
    for task, field, value, what in MALFORMED:
        document = json.loads(good)
        document["tasks"][task][field] = value
        lock_file(warm_project).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        for command in (("plan", "--locked"), ("run", "--locked"), ("plan", "--explain"), ("verify",)):
            completed = run_cli_in_process([command[0], str(warm_project.config), *command[1:]])
            assert completed.status == 2, (task, command, completed.stdout, completed.stderr)
            assert f"the lock is unreadable: task {task}: {what}" in completed.stderr, (
                command,
                completed.stderr,
            )
            assert f"{lock_file(warm_project)}:" in completed.stderr
            assert "internal error" not in completed.stderr and "Traceback" not in completed.stderr


def test_locked_rejects_a_lock_whose_material_does_not_hash_to_its_key(warm_project: Project) -> None:
    warm_project.run_json()

    def edited(document: dict[str, Any]) -> None:
        document["tasks"]["tiny/export"]["params"]["opset"] = 18
        document["tasks"]["tiny/simplify"]["tools"]["onnxsim"] = "0.9.9"

    edit_lock(warm_project, edited)
    before = fingerprint(lock_file(warm_project))
    planned = warm_project.trtbuild("plan", str(warm_project.config), "--locked")
    assert planned.returncode == 1, planned.stdout
    for task in ("tiny/export", "tiny/simplify"):
        assert (
            f"{task}: the lock's key " in planned.stdout
            and "does not match its own material (edited?)" in (planned.stdout)
        )
    # run --locked --json: the differences are the one JSON document on stdout, and nothing ran.
    locked = warm_project.trtbuild("run", str(warm_project.config), "--locked", "--json")
    assert locked.returncode == 1
    document = json.loads(locked.stdout)
    assert document["tasks"] == [] and document["exit_status"] == 1
    assert [line.partition(":")[0] for line in document["lock_differences"]] == [
        "tiny/export",
        "tiny/simplify",
    ]
    assert fingerprint(lock_file(warm_project)) == before


def test_a_key_the_lock_cannot_give_is_a_difference_naming_why(warm_project: Project, tmp_path: Path) -> None:
    warm_project.run_json()

    def renamed(document: dict[str, Any]) -> None:
        outputs = document["tasks"]["tiny/export"]["outputs"]
        outputs["renamed.onnx"] = outputs.pop("model.onnx")

    edit_lock(warm_project, renamed)
    planned = warm_project.trtbuild(
        "plan", str(warm_project.config), "--locked", "--json", "--cache-dir", str(tmp_path / "empty")
    )
    assert planned.returncode == 1, planned.stdout
    assert json.loads(planned.stdout)["lock"]["differences"] == [
        "tiny/simplify: cannot be checked: tiny/export's output model.onnx is not in tiny.lock"
    ]


def test_a_lock_difference_after_the_run_says_what_to_do_about_the_lock(warm_project: Project) -> None:
    warm_project.run_json()

    def altered(document: dict[str, Any]) -> None:  # the last task: nothing downstream keys on it
        document["tasks"]["tiny/fp32/validate"]["outputs"]["validation.json"]["hash"] = "blake3:" + "0" * 64

    edit_lock(warm_project, altered)
    completed = warm_project.trtbuild(
        "run", str(warm_project.config), "--locked", "--no-cache", "--out", str(warm_project.out)
    )
    assert completed.returncode == 1, completed.stderr
    assert "The run differs from the lock (1):" in completed.stdout
    assert "The lock was left alone. If these differences are intended" in completed.stdout
    assert "fix the cause and run again" not in completed.stdout


def test_a_directory_where_the_lock_goes_is_a_clear_error_before_anything_runs(tiny_project: Project) -> None:
    lock_file(tiny_project).mkdir()
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 2, completed.stderr
    assert f"error: {lock_file(tiny_project)} is a directory, where trtbuild keeps the lock of" in (
        completed.stderr
    )
    assert "internal error" not in completed.stderr
    assert not tiny_project.out.exists()  # nothing ran
