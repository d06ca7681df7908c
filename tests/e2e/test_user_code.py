"""Only the user's own code is hashed into keys, wherever installed packages live (issue 9, finding 10).

On d561ae9 a package importable from outside site-packages (`pip install --target DIR` on PYTHONPATH,
a folder a `.pth` file adds) was walked and hashed as if it were the user's code: with a copy of
torch, sympy, networkx and numpy (4,951 .py files, their *.dist-info beside them) on PYTHONPATH,
`trtbuild plan` on the tiny model printed nothing for 6 min 57 s, then "internal error: KeyError:
'setuptools._distutils'" (a folder without __init__.py inside a package). Here a package with
pip's metadata beside it is installed code, wherever it is; the walk through the user's own code is
capped, with a config error naming what it walked; `plan --explain` lists the files hashed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow

MODEL = """\
import torch

import fakelib
from helpers import offset


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(fakelib.double(x)) + offset()
"""

CONFIG = """\
model: {name: net, source: "models:Net"}
inputs:
  x: {shape: [batch, 4], dtype: float32}
outputs:
  y: {shape: [batch, 2]}
export: {opset: 17, exporter: torchscript}
profiles:
  default:
    x: {min: [1, 4], opt: [2, 4], max: [4, 4]}
build: {targets: [SM89]}
validate: {samples: 2}
"""

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "fakelib"
version = "1.0"

[tool.setuptools]
packages = ["fakelib"]
"""


def pip_install_target(tmp_path: Path) -> Path:
    """`pip install --target` of a tiny local package, with real pip: what a user puts on PYTHONPATH."""
    source = tmp_path / "fakelib-src"
    (source / "fakelib").mkdir(parents=True)
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "fakelib" / "__init__.py").write_text("def double(x):\n    return x * 2\n")
    target = tmp_path / "third-party"
    offline = ["--no-index", "--no-deps", "--no-build-isolation", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--target", str(target), *offline, str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (target / "fakelib-1.0.dist-info").is_dir() and (target / "fakelib" / "__init__.py").is_file()
    return target


def trtbuild(project: Project, pythonpath: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in the project folder, with `pythonpath` in front of the Python path."""
    path = os.pathsep.join(p for p in (str(pythonpath), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(project.cache), "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "trtbuild", *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def export_key(project: Project, pythonpath: Path) -> str:
    completed = trtbuild(project, pythonpath, "plan", str(project.config), "--json")
    assert completed.returncode == 0, completed.stderr
    (key,) = [t["key"] for t in json.loads(completed.stdout)["tasks"] if t["kind"] == "export"]
    return str(key)


def test_a_package_installed_on_pythonpath_is_not_hashed_and_the_users_helper_is(
    tiny_project: Project, tmp_path: Path
) -> None:
    target = pip_install_target(tmp_path)
    (tiny_project.root / "models.py").write_text(MODEL)
    (tiny_project.root / "helpers.py").write_text("def offset():\n    return 1.0\n")
    tiny_project.write_config(CONFIG)
    before = export_key(tiny_project, target)

    # Someone else's code, installed: editing it (or another copy of it) does not rebuild the model.
    library = target / "fakelib" / "__init__.py"
    library.write_text(library.read_text() + "# a local patch\n")
    assert export_key(tiny_project, target) == before, "fakelib's source is hashed into the export key"

    # The user's own helper, imported by the model, is.
    (tiny_project.root / "helpers.py").write_text("def offset():\n    return 2.0\n")
    assert export_key(tiny_project, target) != before

    explained = trtbuild(tiny_project, target, "plan", str(tiny_project.config), "--explain", "--json")
    assert explained.returncode == 0, explained.stderr
    (code,) = json.loads(explained.stdout)["code"]["net"]
    assert code["field"] == "model.source" and code["module"] == "models"
    assert code["files"] == ["helpers.py", "models.py"]
    assert code["installed"]["fakelib"] == "fakelib==1.0"  # keyed by version (export v12)
    text = trtbuild(tiny_project, target, "plan", str(tiny_project.config), "--explain").stdout
    assert "net model.source: models: 2 files" in text and "helpers.py, models.py" in text
    assert "installed, keyed by version, not hashed: fakelib (fakelib==1.0)" in text


def test_a_walk_past_the_cap_is_a_config_error_naming_what_it_walked(
    tiny_project: Project, tmp_path: Path
) -> None:
    from trtbuild.tasks.code import MAX_FILES

    # A library on the path without package metadata (a source checkout), larger than any model's code.
    library = tmp_path / "checkouts" / "biglib"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text("VERSION = 1\n")
    for index in range(MAX_FILES):
        (library / f"module{index:04}.py").write_text("")
    (tiny_project.root / "tinynet.py").write_text(
        "import biglib\n" + (tiny_project.root / "tinynet.py").read_text()
    )

    completed = trtbuild(tiny_project, library.parent, "plan", str(tiny_project.config))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "tiny.yaml:3:" in completed.stderr and "model.source" in completed.stderr
    assert f"following the imports of tinynet reached more than {MAX_FILES} files" in completed.stderr
    assert f"biglib ({MAX_FILES} files" in completed.stderr and str(library) in completed.stderr
    assert "code: {exclude: [biglib]}" in completed.stderr
    assert "Traceback" not in completed.stderr

    # What the hint says works, and `--explain` says what it left out.
    tiny_project.write_config(tiny_project.config.read_text() + "code: {exclude: [biglib]}\n")
    explained = trtbuild(tiny_project, library.parent, "plan", str(tiny_project.config), "--explain")
    assert explained.returncode == 0, explained.stderr
    assert "tiny model.source: tinynet: 1 file" in explained.stdout
    assert "not hashed, code.exclude: biglib" in textwrap.dedent(explained.stdout)
