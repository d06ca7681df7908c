"""What the config fuzzing (tests/faults/config_fuzz.py, bench/fuzz_configs.py) found, each kept as a
config that broke the property before its fix: through the CLI's entry point, exit 2, file:line on
every problem, no internal error."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_CONFIG, Project
from tests.faults.config_fuzz import check, run_cli_in_process

FOUND = [
    # internal error: AssertionError: the matrix gives every cell a single precision
    (
        "a list as a precision axis value",
        TINY_CONFIG + "matrix:\n  precision: [[fp16, int8]]\n",
        "found a list",
    ),
    (
        "a list as an include entry's precision",
        TINY_CONFIG + "precision: [fp32, fp16]\nmatrix:\n  include: [{precision: [fp16, int8]}]\n",
        "found a list",
    ),
    (
        "an include entry adding a cell without a precision",
        TINY_CONFIG
        + "precision: [fp32, fp16]\nmatrix:\n  validate.seed: [0, 1]\n  include: [{validate.seed: 7}]\n",
        "without a precision",
    ),
    # The key's newline split the problem's first line: no file:line on the second half.
    (
        "a key holding a newline",
        '"a\\nb": 1\n' + TINY_CONFIG,
        "a\\x0ab",
    ),
]


@pytest.mark.parametrize(("what", "text", "words"), FOUND, ids=[f[0] for f in FOUND])
def test_fuzz_finding_is_a_located_config_error(
    tiny_project: Project, monkeypatch: pytest.MonkeyPatch, what: str, text: str, words: str
) -> None:
    monkeypatch.setenv("TRTBUILD_CACHE_DIR", str(tiny_project.cache))
    tiny_project.config.write_text(text)
    outcome = run_cli_in_process(["plan", str(tiny_project.config)])
    assert outcome.status == 2, (what, outcome.stderr)
    assert check(outcome, tiny_project.config) == [], outcome.stderr
    assert words in outcome.stderr, outcome.stderr
