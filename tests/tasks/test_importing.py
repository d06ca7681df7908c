"""User code imported by name (tasks/importing.py) in a process that serves several configs: a
worker runs the tasks of every config on the command line, and two config folders may each hold a
module of the same name (`models/net.py`). Each import must get the module beside its own config,
or a config's export is cached under its key with another config's model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trtbuild.tasks.importing import import_attribute


def project(root: Path, value: int) -> str:
    """A config folder with a package `models` whose `net.VALUE` is `value`, through a helper module
    of a common name."""
    (root / "models").mkdir(parents=True)
    (root / "models" / "__init__.py").write_text("")
    (root / "models" / "net.py").write_text("from helpers_for_test import BASE\nVALUE = BASE\n")
    (root / "helpers_for_test.py").write_text(f"BASE = {value}\n")
    return str(root)


@pytest.fixture
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))


@pytest.mark.usefixtures("clean_imports")
def test_each_config_gets_the_module_beside_it(tmp_path: Path) -> None:
    a, b = project(tmp_path / "a", 10), project(tmp_path / "b", 7)
    assert import_attribute("models.net:VALUE", [a], "model.source") == 10
    assert import_attribute("models.net:VALUE", [b], "model.source") == 7
    assert import_attribute("models.net:VALUE", [a], "model.source") == 10


@pytest.mark.usefixtures("clean_imports")
def test_a_config_folder_already_on_sys_path_still_comes_first(tmp_path: Path) -> None:
    a, b = project(tmp_path / "a", 10), project(tmp_path / "b", 7)
    sys.path.append(a)  # the current directory, say, where config a lives
    assert import_attribute("models.net:VALUE", [b], "model.source") == 7
    assert import_attribute("models.net:VALUE", [a], "model.source") == 10


@pytest.mark.usefixtures("clean_imports")
def test_an_unchanged_config_folder_keeps_its_modules(tmp_path: Path) -> None:
    a = project(tmp_path / "a", 10)
    first = import_attribute("models.net:VALUE", [a], "model.source")
    module = sys.modules["models.net"]
    assert import_attribute("models.net:VALUE", [a], "model.source") == first
    assert sys.modules["models.net"] is module  # not imported again
