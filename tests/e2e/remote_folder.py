"""Helpers for the shared-folder remote cache's tests (tests/e2e/test_remote_folder*.py) and its kill
benchmark (bench/remote_kill_points.py): clones of the tiny project at different paths, each with
its own local cache, run by the real CLI against one `file://` remote, and a walk of the remote as
any reader would see it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, TINY_CONFIG, TINY_MODEL, Project

# tests/conftest.py's WideNet: 8 MB of weights, so its graphs and engine are 8 MB blobs to upload.
WIDE_CONFIG = """\
model: {name: wide, source: "tinynet:WideNet"}
inputs:
  x: {shape: [batch, 1024], dtype: float32}
outputs:
  y: {shape: [batch, 1024]}
export: {opset: 17, exporter: torchscript}
profiles:
  default:
    x: {min: [1, 1024], opt: [2, 1024], max: [4, 1024]}
build:
  targets: [SM89]
validate:
  samples: 3
  tolerance:
    fp32: {atol: 1.0e-3, rtol: 1.0e-3}
"""


def clone(base: Path, name: str, config: str = TINY_CONFIG) -> Project:
    """A copy of the project at `base/name`, with its own local cache `base/name-cache`."""
    root = base / name
    root.mkdir(parents=True)
    (root / "tinynet.py").write_text(TINY_MODEL)
    (root / "tiny.yaml").write_text(config)
    return Project(root=root, config=root / "tiny.yaml", cache=base / f"{name}-cache", out=root / "build")


def url(remote: Path) -> str:
    return f"file://{remote}"


def command(project: Project, remote: Path, *args: str) -> list[str]:
    return [
        *(sys.executable, "-m", "trtbuild", "run", str(project.config), "--out", str(project.out)),
        *("--json", "--remote-cache", url(remote), *args),
    ]


def environment(project: Project) -> dict[str, str]:
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(project.cache), "PYTHONPATH": str(REPO)}
    for name in ("TRTBUILD_DEBUG", "TRTBUILD_REMOTE_CACHE", "TRTBUILD_REMOTE_READ_ONLY"):
        env.pop(name, None)
    return env


def start(project: Project, remote: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(project, remote, *args),
        cwd=project.root,
        env=environment(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(project: Project, remote: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(project, remote, *args),
        cwd=project.root,
        env=environment(project),
        capture_output=True,
        text=True,
        timeout=300,
    )


def run_watching(
    project: Project, remote: Path, watched: tuple[str, ...]
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`run` through the CLI's entry point in a new interpreter, and which of the `watched` modules
    that process had imported by the end (its last line on stderr)."""
    arguments = command(project, remote)[3:]  # after `python -m trtbuild`
    probe = (
        "import json, sys\nfrom trtbuild.cli import main\n"
        f"status = main({arguments!r})\n"
        f"print(json.dumps(sorted(m for m in {watched!r} if m in sys.modules)), file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=project.root,
        env=environment(project),
        capture_output=True,
        text=True,
        timeout=300,
    )
    loaded = json.loads(completed.stderr.strip().splitlines()[-1]) if completed.returncode == 0 else []
    return completed, loaded


def lock_of(project: Project) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(project.config.with_suffix(".lock").read_text())
    return loaded


def states(completed: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Task id -> state from a `run --json` document."""
    return {task["id"]: task["state"] for task in json.loads(completed.stdout)["tasks"]}


def warnings(completed: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in completed.stderr.splitlines() if "warning" in line.lower()]


def remote_problems(remote: Path) -> list[str]:
    """What a reader of the remote could be given that is wrong: an entry that does not check itself
    (trtbuild's own decode), or that names a blob which is missing, of another size, or does not hash
    to its name; also any blob under cas/ that does not hash to its name."""
    from trtbuild.store.action_cache import DamagedEntry, decode
    from trtbuild.store.hashing import digest_file
    from trtbuild.store.remote.files import RemoteFiles
    from trtbuild.store.remote.settings import parse_remote_url

    files = RemoteFiles(parse_remote_url(url(remote), source="test"))
    problems = []
    for entry in sorted(remote.glob("ac/*/*.json")):
        try:
            result = decode(entry.read_bytes(), entry.stem)
        except DamagedEntry as damaged:
            problems.append(f"{entry.name}: damaged ({damaged})")
            continue
        if result is None:
            problems.append(f"{entry.name}: of another format")
            continue
        for name, digest in result.outputs.items():
            blob = Path(files.blob_path(digest.hash))
            if not blob.is_file():
                problems.append(f"{entry.name}: {name}'s blob is missing")
            elif blob.stat().st_size != digest.size or digest_file(blob) != digest.hash:
                problems.append(f"{entry.name}: {name}'s blob is partial or damaged")
    for blob in sorted(remote.glob("cas/*/*")):
        if digest_file(blob) != f"blake3:{blob.name}":
            problems.append(f"blob {blob.name} does not hash to its name")
    return problems


def remote_entries(remote: Path) -> set[str]:
    return {entry.stem for entry in remote.glob("ac/*/*.json")}


def remote_leftovers(remote: Path) -> list[str]:
    tmp = remote / "tmp"
    return sorted(path.name for path in tmp.iterdir()) if tmp.is_dir() else []
