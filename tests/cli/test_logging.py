"""TRTBUILD_LOG: a level name, or a clear usage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli


def test_an_unknown_log_level_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTBUILD_LOG", "verbose")
    completed = run_cli("schema", cwd=tmp_path, cache=tmp_path / "cache")
    assert completed.returncode == 2, completed.stderr
    assert "TRTBUILD_LOG=verbose is not a log level: use debug, info, warning or error" in completed.stderr
    assert "Traceback" not in completed.stderr
