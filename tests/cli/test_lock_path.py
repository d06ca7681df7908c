"""Issue 13, defect 5: a config named `X.lock` was overwritten by its own lock
(`cp tiny.yaml cfg.lock; trtbuild run cfg.lock`). A lock may never overwrite a config."""

from __future__ import annotations

import shutil

from tests.conftest import Project


def test_a_config_named_dot_lock_is_refused_and_kept(tiny_project: Project) -> None:
    config = tiny_project.root / "cfg.lock"
    shutil.copy(tiny_project.config, config)
    text = config.read_text()
    completed = tiny_project.trtbuild("run", str(config), "--out", str(tiny_project.out))
    assert completed.returncode == 2, completed.stderr[-3000:]
    assert config.read_text() == text
    assert f"{config}:1:1:" in completed.stderr and "cannot be named *.lock" in completed.stderr
    assert f"mv {config} {tiny_project.root / 'cfg.yaml'}" in completed.stderr
    assert not tiny_project.out.exists()


def test_two_configs_of_one_command_cannot_share_a_lock(tiny_project: Project) -> None:
    twin = tiny_project.root / "tiny.yml"
    twin.write_text(tiny_project.config.read_text().replace("name: tiny", "name: twin"))
    completed = tiny_project.trtbuild("plan", str(tiny_project.config), str(twin))
    assert completed.returncode == 2, completed.stderr
    assert f"{twin}:1:1:" in completed.stderr
    assert "would both write the lock" in completed.stderr and "tiny.lock" in completed.stderr


def test_configs_named_through_a_symlinked_folder_cannot_share_a_lock(tiny_project: Project) -> None:
    """`d/tiny.yaml` and `link/tiny.yml`, `link` a symlink to `d`: one lock file. Before, the run
    exited 0 and the second lock replaced the first, so `plan --locked d/tiny.yaml` failed."""
    twin = tiny_project.root / "tiny.yml"
    twin.write_text(tiny_project.config.read_text().replace("name: tiny", "name: twin"))
    (tiny_project.root.parent / "link").symlink_to(tiny_project.root)
    through_link = tiny_project.root.parent / "link" / "tiny.yml"
    completed = tiny_project.trtbuild("plan", str(tiny_project.config), str(through_link))
    assert completed.returncode == 2, completed.stderr
    assert f"{through_link}:1:1:" in completed.stderr and "would both write the lock" in completed.stderr


def test_a_config_name_too_long_for_its_lock_is_refused_before_anything_runs(tiny_project: Project) -> None:
    """A 245-byte config name built every task, then: "cannot write the lock: File name too long"."""
    config = tiny_project.root / f"{'c' * 240}.yaml"
    shutil.copy(tiny_project.config, config)
    completed = tiny_project.trtbuild("run", str(config), "--out", str(tiny_project.out))
    assert completed.returncode == 2, completed.stderr[-3000:]
    assert f"{config}:1:1:" in completed.stderr and "file name is too long" in completed.stderr
    assert not tiny_project.out.exists()
