"""Concurrent runs on one cache (done-when item 2 of issue 13): runs of one config into the same and
into separate --out folders, and of a config that shares tasks with it, all at once: all succeed
and each task runs once, counted from the runs' own `--json` documents (state `ran` per task key)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO, Project

pytestmark = pytest.mark.slow


def _run_at_once(project: Project, runs: list[tuple[Path, Path]]) -> list[dict]:
    """(config, out) pairs run at once on the project's cache; their --json documents."""
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(project.cache), "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "trtbuild", "run", str(config), "--out", str(out), "--json"],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for config, out in runs
    ]
    documents = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
        documents.append(json.loads(stdout))
    return documents


def _runs_per_key(documents: list[dict]) -> Counter[str]:
    return Counter(
        task["key"] for document in documents for task in document["tasks"] if task["state"] == "ran"
    )


def test_four_runs_at_once_run_each_task_once(tiny_project: Project) -> None:
    # Three of one config (two into the same --out, one into its own) and one of a config that
    # shares all but its validate task with it: one cold run's worth of work on one cache.
    other = tiny_project.root / "looser.yaml"
    other.write_text(tiny_project.config.read_text().replace("atol: 1.0e-4", "atol: 1.0e-3"))
    root = tiny_project.root
    runs = [(tiny_project.config, root / "build"), (tiny_project.config, root / "build")]
    runs += [(tiny_project.config, root / "own"), (other, root / "other")]
    documents = _run_at_once(tiny_project, runs)
    keys = {task["key"] for document in documents for task in document["tasks"]}
    assert len(keys) == 8  # six shared tasks, and each config's own validate
    assert _runs_per_key(documents) == Counter(dict.fromkeys(keys, 1))
    for out in ("build", "own", "other"):
        assert len(list((root / out / "tiny" / "fp32").iterdir())) == 5
    assert not list((tiny_project.cache / "tmp").iterdir())
