"""A fully cached run (a no-op) writes nothing and imports no schema checker, rich or metadata scan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Project, run_in_fresh_interpreter, states

pytestmark = pytest.mark.slow

# What a no-op used to import: PyYAML and jsonschema to read and re-check an unchanged config, rich
# for the summary, importlib.metadata (and the email parser under it) for tool versions; then what
# only running tasks, copying files or suggesting names needs (standard library modules, and the
# task kinds' run-only helpers), which planning imported through the task modules and argparse.
START_UP_MODULES = (
    *("jsonschema", "rich", "importlib.metadata", "email", "yaml"),
    *("subprocess", "shutil", "tempfile", "random", "difflib", "pkgutil", "lzma", "bz2"),
    *(f"trtbuild.tasks.{name}" for name in ("torch_model", "traceable", "binding", "onnx_tensors")),
    *(f"trtbuild.tasks.{name}" for name in ("onnxruntime_errors", "metrics", "float_environment")),
    *(f"trtbuild.tasks.{name}" for name in ("graph_order", "shape_annotations", "node_patterns")),
    # The validation run's helpers and the executor's worker machinery load only when a task runs.
    *(
        "trtbuild.tasks.overflow",
        "zipfile",
        "multiprocessing",
        "trtbuild.exec.worker",
        "trtbuild.exec.workers",
    ),
)


def snapshot(*folders: Path) -> dict[str, tuple[int, int, int]]:
    """Every file and folder under `folders` (or the file itself): inode, size and mtime."""
    found: dict[str, tuple[int, int, int]] = {}
    for top in folders:
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            st = path.lstat()
            found[str(path)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return found


def test_a_noop_run_writes_nothing_and_imports_no_start_up_weight(tiny_project: Project) -> None:
    assert set(states(tiny_project.run_json()).values()) == {"ran"}
    watched = (
        tiny_project.out,
        tiny_project.config.with_suffix(".lock"),
        tiny_project.cache / "roots",
        tiny_project.cache / "ac",
        tiny_project.cache / "validated",
    )
    before = snapshot(*watched)
    report, completed = run_in_fresh_interpreter(tiny_project, START_UP_MODULES)
    assert "Nothing to do: all 7 tasks are cached." in completed.stdout
    # Same inodes and mtimes: no artifact relinked, no new run root, no lock or root rewritten, no
    # action entry or validation marker touched.
    assert snapshot(*watched) == before
    assert len(os.listdir(tiny_project.cache / "roots")) == 2  # the lock's root and the run's
    assert report == {"status": 0, "loaded": []}


def test_a_noop_run_prints_the_summary_table_without_rich(warm_project: Project) -> None:
    warm_project.trtbuild("run", str(warm_project.config), "--out", str(warm_project.out), check=True)
    completed = warm_project.trtbuild("run", str(warm_project.config), "--out", str(warm_project.out))
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    header = next(line for line in lines if line.startswith("cell "))
    row = next(line for line in lines if line.startswith("fp32 "))
    # Columns line up: each header starts where its values do.
    assert row[header.index("precision") :].startswith("fp32")
    assert "\x1b[" not in completed.stdout  # no colour when not a terminal
    assert max(len(line) for line in lines if "│" not in line and not line.startswith("tiny/")) <= 150


def test_a_reader_that_goes_away_ends_the_run_quietly(warm_project: Project) -> None:
    """`trtbuild run CONFIG | head -1`: the summary's writes meet a closed pipe. That was "internal
    error: BrokenPipeError ... This is a bug in trtbuild" with exit 1; now it is what a shell says
    of a process ended by SIGPIPE, and nothing else."""
    warm_project.run_json()
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout fails, whatever the timing
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(warm_project.cache)}
    try:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "trtbuild",
                "run",
                str(warm_project.config),
                "--out",
                str(warm_project.out),
            ],
            cwd=warm_project.root,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert completed.returncode == 141, completed.stderr
    assert "internal error" not in completed.stderr and "Traceback" not in completed.stderr
