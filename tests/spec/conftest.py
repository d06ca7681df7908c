"""Fixtures for spec tests: write configs into tmp_path, load them, collect their problems.

Helpers are fixtures rather than importable functions because tests/conftest.py is also a module
named `conftest`, so `from conftest import ...` would be ambiguous.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from trtbuild.errors import ConfigError, Problem
from trtbuild.spec.loader import load_spec

# A valid config whose model source needs no third-party package. Tests edit one line of it and
# assert the problem's line, so keep the line numbers in this comment true:
#   1 model  3 source  5 input  6 outputs  7 export  9 profile default  10 validate
GOOD = """\
model:
  name: demo
  source: json:JSONDecoder
inputs:
  input: {shape: [batch, 3, 224, 224], dtype: float32}
outputs: [logits]
export: {opset: 17, exporter: torchscript}
profiles:
  default: {input: {min: [1, 3, 224, 224], opt: [8, 3, 224, 224], max: [32, 3, 224, 224]}}
validate: {samples: 4, tolerance: {fp32: {atol: 1e-4}}}
"""


@pytest.fixture
def good_text() -> str:
    return GOOD


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(text, name="config.yaml") -> the file's path; `text` is dedented."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def edit_good(write_config: Callable[..., Path]) -> Callable[..., Path]:
    """edit_good(old, new, old2, new2, ...) -> path of GOOD with each `old` replaced by its `new`."""

    def edit(*pairs: str) -> Path:
        text = GOOD
        assert len(pairs) % 2 == 0, "edit_good takes (old, new) pairs"
        for old, new in zip(pairs[::2], pairs[1::2], strict=True):
            assert old in text, f"{old!r} is not in GOOD"
            text = text.replace(old, new)
        return write_config(text)

    return edit


def _problems(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    return info.value.problems


@pytest.fixture
def all_problems() -> Callable[[Path], list[Problem]]:
    """all_problems(path) -> every problem load_spec reports; fails the test if the config loads."""
    return _problems


@pytest.fixture
def one_problem() -> Callable[[Path], Problem]:
    """one_problem(path) -> the single problem reported (fails, listing them, if there are more)."""

    def single(path: Path) -> Problem:
        problems = _problems(path)
        assert len(problems) == 1, "\n".join(p.render() for p in problems)
        return problems[0]

    return single
