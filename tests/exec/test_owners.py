"""A model's output folder records the config that builds into it; another config is refused
(issue 9, finding 5). Spec loading only: nothing is exported or built here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import Project
from trtbuild import api
from trtbuild.errors import ConfigError
from trtbuild.exec.owners import OWNER_FILE, check_owners, claim_owners


def copy_config(project: Project, name: str) -> Path:
    copy = project.root / name
    copy.write_text(project.config.read_text())
    return copy


def test_the_first_config_claims_the_folder_and_keeps_it(tiny_project: Project) -> None:
    specs = api.load([tiny_project.config])
    assert check_owners(specs, tiny_project.out) == []
    claim_owners(specs, tiny_project.out)
    record = tiny_project.out / "tiny" / OWNER_FILE
    assert json.loads(record.read_text()) == {"config": "../../tiny.yaml"}
    before = record.stat().st_mtime_ns
    assert check_owners(specs, tiny_project.out) == []
    claim_owners(specs, tiny_project.out)
    assert record.stat().st_mtime_ns == before  # a run that changes nothing writes nothing


def test_another_config_of_the_same_model_is_refused(tiny_project: Project) -> None:
    claim_owners(api.load([tiny_project.config]), tiny_project.out)
    other = copy_config(tiny_project, "other.yaml")
    with pytest.raises(ConfigError) as raised:
        check_owners(api.load([other]), tiny_project.out)
    (problem,) = raised.value.problems
    assert problem.field_path == "model.name"
    assert str(problem.location) == f"{other}:2:9"
    assert str(tiny_project.config) in problem.message and str(other) in problem.message
    assert "--out" in problem.hint and "another name" in problem.hint


def test_a_config_that_no_longer_exists_hands_the_folder_over(tiny_project: Project) -> None:
    claim_owners(api.load([tiny_project.config]), tiny_project.out)
    renamed = tiny_project.config.rename(tiny_project.root / "renamed.yaml")
    specs = api.load([renamed])
    (notice,) = check_owners(specs, tiny_project.out)
    assert "tiny.yaml, which no longer exists" in notice and str(renamed) in notice
    claim_owners(specs, tiny_project.out)
    assert check_owners(specs, tiny_project.out) == []


def test_a_project_moved_as_a_whole_keeps_its_owners(tiny_project: Project, tmp_path: Path) -> None:
    claim_owners(api.load([tiny_project.config]), tiny_project.out)
    moved = Path(shutil.copytree(tiny_project.root, tmp_path / "moved"))
    assert check_owners(api.load([moved / "tiny.yaml"]), moved / "build") == []


def test_an_unreadable_record_is_no_owner(tiny_project: Project) -> None:
    (tiny_project.out / "tiny").mkdir(parents=True)
    (tiny_project.out / "tiny" / OWNER_FILE).write_text("{not json")
    assert check_owners(api.load([tiny_project.config]), tiny_project.out) == []
