"""default_cache_dir: $TRTBUILD_CACHE_DIR, else $XDG_CACHE_HOME/trtbuild, else ~/.cache/trtbuild."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtbuild.store import default_cache_dir


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRTBUILD_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_home_default(tmp_path: Path) -> None:
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "trtbuild"


def test_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "trtbuild"


def test_empty_or_relative_xdg_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "trtbuild"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "trtbuild"


def test_trtbuild_cache_dir_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TRTBUILD_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("TRTBUILD_CACHE_DIR", "~/c")
    assert default_cache_dir() == tmp_path / "home" / "c"
    monkeypatch.setenv("TRTBUILD_CACHE_DIR", "")
    assert default_cache_dir() == tmp_path / "xdg" / "trtbuild"
