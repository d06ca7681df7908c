"""Property-based fuzzing of configs through `trtbuild plan` (issue 13, done-when item 3): the CI
subset, seeded and derandomised. bench/fuzz_configs.py runs >= 10,000 through plan and >= 200
through run with the same strategy and property (tests/faults/config_fuzz.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.faults.config_fuzz import FuzzConfig, Workspace, check, fuzzed_configs, run_cli_in_process  # noqa: E402


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRTBUILD_CACHE_DIR", str(root / "cache"))
        work = Workspace(root)
        work.warm_up()
    return work


@pytest.mark.slow
@settings(
    max_examples=1000,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
@given(config=fuzzed_configs())
def test_plan_of_a_fuzzed_config_exits_cleanly(
    workspace: Workspace, config: FuzzConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRTBUILD_CACHE_DIR", str(Path(workspace.out).parent / "cache"))
    path = workspace.write(config)
    outcome = run_cli_in_process(["plan", str(path)])
    assert check(outcome, path) == [], (config.data[:1000], outcome.stderr[-2000:])
