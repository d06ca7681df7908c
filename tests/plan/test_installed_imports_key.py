"""The installed packages a model's local code imports are keyed by version (export v12).

An adversarial review of the remote cache found that a clone whose environment held version 2.0 of
a library the model imports (`torch.manual_seed(fakelib.SEED)`) was served, from the remote, the
engine, reference outputs and "validation passed" of the clone with version 1.0: the keys held the
model's own files and the tool versions only (`plan --explain` even said "not hashed, installed:
fakelib"). The same happened locally after an upgrade. Two real installed copies of a package here,
each with pip's metadata beside it, on the PYTHONPATH in turn."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Project, run_cli


def _installed(root: Path, version: str, seed: int) -> Path:
    """A folder holding `fakelib` as pip installs it (package + dist-info), for PYTHONPATH."""
    (root / "fakelib").mkdir(parents=True)
    (root / "fakelib" / "__init__.py").write_text(f"SEED = {seed}\n")
    info = root / f"fakelib-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakelib\nVersion: {version}\n")
    (info / "RECORD").write_text("")
    return root


def _plan(project: Project, site: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], str]:
    """Task kind -> key (first of each kind), and how `plan --explain` names fakelib, with `site` on
    the path."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    where = {"cwd": project.root, "cache": project.cache, "check": True}
    document = json.loads(run_cli("plan", str(project.config), "--explain", "--json", **where).stdout)  # type: ignore[arg-type]
    monkeypatch.undo()
    keys: dict[str, str] = {}
    for task in document["tasks"]:
        keys.setdefault(task["kind"], task["key"])
    (code,) = document["code"]["tiny"]
    return keys, code["installed"]["fakelib"]


def test_another_version_of_an_imported_package_is_another_key(
    tiny_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_project.root / "tinynet.py"
    model.write_text(
        "import fakelib\n"
        + model.read_text().replace("torch.manual_seed(0)", "torch.manual_seed(fakelib.SEED)")
    )
    one = _installed(tmp_path / "site-one", "1.0", 0)
    two = _installed(tmp_path / "site-two", "2.0", 7)
    keys_one, explained_one = _plan(tiny_project, one, monkeypatch)
    keys_two, explained_two = _plan(tiny_project, two, monkeypatch)
    assert (explained_one, explained_two) == ("fakelib==1.0", "fakelib==2.0")
    assert keys_one["export"] != keys_two["export"]
    assert keys_one["reference"] != keys_two["reference"]
    # The same version again is the same key: versions, not paths, are keyed.
    again, _ = _plan(tiny_project, _installed(tmp_path / "elsewhere", "1.0", 0), monkeypatch)
    assert again == keys_one
