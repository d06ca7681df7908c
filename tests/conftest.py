"""Shared fixtures: a tiny real PyTorch model and a config for it, written by the tests themselves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

TINY_MODEL = '''
import torch


class TinyNet(torch.nn.Module):
    """A conv, a pool and a linear layer: exports, simplifies and builds in about a second."""

    def __init__(self, classes: int = 10):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, classes)

    def forward(self, x):
        y = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc(y)


class WideNet(torch.nn.Module):
    """Two 1024x1024 layers: 8 MB of fp32 weights, so weights dominate the engine's size."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Linear(1024, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024)
        )

    def forward(self, x):
        return self.body(x)


class TwoInputNet(torch.nn.Module):
    def forward(self, x, scale):
        return x * scale
'''

TINY_CONFIG = """\
model:
  name: tiny
  source: tinynet:TinyNet
  kwargs: {classes: 10}
inputs:
  input: {shape: [batch, 3, 16, 16], dtype: float32}
outputs:
  logits: {shape: [batch, 10]}
export: {opset: 17, exporter: torchscript}
profiles:
  default:
    input: {min: [1, 3, 16, 16], opt: [2, 3, 16, 16], max: [4, 3, 16, 16]}
build:
  targets: [SM89]
validate:
  samples: 3
  tolerance:
    fp32: {atol: 1.0e-4, rtol: 1.0e-3}
"""


@dataclass
class Project:
    """A folder with a model module and its config, plus a private cache and output folder."""

    root: Path
    config: Path
    cache: Path
    out: Path

    def write_config(self, text: str) -> Path:
        self.config.write_text(textwrap.dedent(text))
        return self.config

    def edit_config(self, old: str, new: str) -> None:
        text = self.config.read_text()
        assert old in text, f"{old!r} not in the config"
        self.config.write_text(text.replace(old, new))

    def trtbuild(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the real CLI in a subprocess, as a user would, in the project folder."""
        return run_cli(*args, cwd=self.root, cache=self.cache, check=check)

    def run_json(self, *args: str) -> dict:
        completed = self.trtbuild("run", str(self.config), "--out", str(self.out), "--json", *args)
        assert completed.returncode in (0, 1), completed.stderr
        return json.loads(completed.stdout)


def run_cli(*args: str, cwd: Path, cache: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(cache)}
    env.pop("TRTBUILD_DEBUG", None)
    completed = subprocess.run(
        [sys.executable, "-m", "trtbuild", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"trtbuild {' '.join(args)} exited {completed.returncode}:\n{completed.stderr}")
    return completed


def in_fresh_interpreter(project: Project, probe: str) -> subprocess.CompletedProcess[str]:
    """Run the Python source `probe` in a new interpreter in the project's folder, with its cache and
    this checkout's trtbuild (PYTHONPATH), whatever the environment has installed."""
    env = {"TRTBUILD_CACHE_DIR": str(project.cache), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(probe)],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_in_fresh_interpreter(
    project: Project, watched: Sequence[str]
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """`trtbuild run` of the project's config, in-process in a new interpreter (in_fresh_interpreter):
    {"status": its exit status, "loaded": which of the `watched` modules it imported}, and the process."""
    probe = f"""
        import json, sys
        from trtbuild.cli import main
        status = main(["run", {str(project.config)!r}, "--out", {str(project.out)!r}])
        loaded = sorted(m for m in {tuple(watched)!r} if m in sys.modules)
        print(json.dumps({{"status": status, "loaded": loaded}}), file=sys.stderr)
        """
    completed = in_fresh_interpreter(project, probe)
    return json.loads(completed.stderr.strip().splitlines()[-1]), completed


def new_tiny_project(top: Path) -> Project:
    """The tiny model and TINY_CONFIG in `top`/project, its cache `top`/cache (nothing built yet)."""
    root = top / "project"
    root.mkdir()
    (root / "tinynet.py").write_text(TINY_MODEL)
    config = root / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    return Project(root=root, config=config, cache=top / "cache", out=root / "build")


@pytest.fixture
def tiny_project(tmp_path: Path) -> Project:
    return new_tiny_project(tmp_path)


# What a warm start copies from the template's cache: its blobs and action entries, the results
# themselves. Not what names the template's paths (GC roots, remembered configs, the stat cache), nor
# its TensorRT-RTX copy (padded to a length that depends on the cache's path; a build makes its own).
WARM_PARTS = ("cas", "ac")


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache holding every result of TINY_CONFIG: one cold run for the whole session."""
    template = new_tiny_project(tmp_path_factory.mktemp("tiny-results"))
    document = template.run_json()
    assert document["exit_status"] == 0 and set(states(document).values()) == {"ran"}, document
    return template.cache


@pytest.fixture
def warm_project(tmp_path: Path, tiny_results: Path) -> Project:
    """tiny_project with every task of TINY_CONFIG already in its cache, for a test that needs
    TINY_CONFIG's results but not their cold build (most: a first run it only needs the outputs
    and the lock of). That run is then a fully cached one, which writes build/, the lock and the GC
    roots at this project's paths as the cold run did, instead of a cold build of ~6 CPU s. A test
    about the cold run itself keeps tiny_project."""
    project = new_tiny_project(tmp_path)
    for part in WARM_PARTS:
        shutil.copytree(tiny_results / part, project.cache / part)
    return project


def ran_kinds(document: dict) -> Counter[str]:
    """Task kind -> how many tasks of that kind ran, from a `run --json` document."""
    return Counter(task["kind"] for task in document["tasks"] if task["state"] == "ran")


def states(document: dict) -> dict[str, str]:
    """Task id -> state from a `run --json` document."""
    return {task["id"]: task["state"] for task in document["tasks"]}


def session_processes(session: int) -> dict[int, tuple[str, int, str]]:
    """pid -> (state, parent pid, command line) of the live (not zombie) processes of `session`
    (a run started with start_new_session=True: whatever it left running is in it)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found[int(stat.parent.name)] = (fields[0], int(fields[1]), command)
    return found
