"""YAML loading: marks, YAML 1.2 scalars, duplicate keys and syntax errors as ConfigError."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trtbuild.errors import ConfigError, Location
from trtbuild.spec.yamlmarks import KEY_MARK, key_location, load_yaml

WriteConfig = Callable[..., Path]


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    return info.value


def test_marks_of_values_and_keys(write_config: WriteConfig) -> None:
    path = write_config(
        """\
        export:
          opset: 17
        shape: [batch, 3]
        """
    )
    document, marks = load_yaml(path)
    assert document == {"export": {"opset": 17}, "shape": ["batch", 3]}
    assert marks[()] == Location(path, 1, 1)
    assert marks[("export", "opset")] == Location(path, 2, 10)
    assert marks[("export", "opset", KEY_MARK)] == Location(path, 2, 3)
    assert key_location(marks, ("export", "opset")) == Location(path, 2, 3)
    assert marks[("shape", 1)] == Location(path, 3, 16)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-4", 1e-4), ("5E3", 5000.0), ("-2.5e-3", -2.5e-3), ("1.0e-4", 1e-4), ("0.5", 0.5), ("12", 12)],
)
def test_yaml_12_numbers(write_config: WriteConfig, text: str, value: float) -> None:
    document, _ = load_yaml(write_config(f"atol: {text}\n"))
    assert document["atol"] == value
    assert type(document["atol"]) is type(value)


@pytest.mark.parametrize(("text", "value"), [("true", True), ("False", False), ("yes", "yes"), ("on", "on")])
def test_yaml_12_booleans(write_config: WriteConfig, text: str, value: object) -> None:
    document, _ = load_yaml(write_config(f"flag: {text}\n"))
    assert document["flag"] == value


def test_dates_and_numeric_keys_stay_text(write_config: WriteConfig) -> None:
    document, _ = load_yaml(write_config("when: 2024-01-01\n1: one\n"))
    assert document == {"when": "2024-01-01", "1": "one"}


def test_merge_keys(write_config: WriteConfig) -> None:
    document, _ = load_yaml(write_config("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n"))
    assert document["m"] == {"x": 1, "y": 3}


def test_duplicate_key_names_both_lines(write_config: WriteConfig) -> None:
    path = write_config("model:\n  name: a\n  source: m:f\n  name: b\n")
    error = load_error(path)
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert str(problem.location) == f"{path}:4:3"
    assert "duplicate key 'name'" in problem.message
    assert "line 2" in problem.message and "line 4" in problem.message


def test_syntax_error_has_location_and_hint(write_config: WriteConfig) -> None:
    path = write_config("model:\n  name: [a, b\n  source: m:f\n")
    error = load_error(path)
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert problem.location is not None and problem.location.file == path
    assert problem.location.line == 3
    assert problem.message.startswith("invalid YAML")
    assert "[ list ]" in problem.hint


def test_tab_indentation_hint(write_config: WriteConfig) -> None:
    error = load_error(write_config("model:\n\tname: a\n"))
    assert "tabs" in error.problems[0].hint


def test_empty_file(write_config: WriteConfig) -> None:
    path = write_config("# nothing but a comment\n")
    error = load_error(path)
    assert "empty" in error.problems[0].message
    assert str(error.problems[0].location) == f"{path}:1:1"


def test_top_level_must_be_a_mapping(write_config: WriteConfig) -> None:
    path = write_config("- model\n- inputs\n")
    error = load_error(path)
    assert "expected a mapping at the top level, found a list" in error.problems[0].message


def test_missing_file(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nope.yaml")
    assert "not found" in error.problems[0].message


def test_unsupported_tag(write_config: WriteConfig) -> None:
    path = write_config("a: !python/object 1\n")
    error = load_error(path)
    assert "unsupported YAML tag" in error.problems[0].message
    assert str(error.problems[0].location) == f"{path}:1:4"


def test_cyclic_alias_is_an_error(write_config: WriteConfig) -> None:
    error = load_error(write_config("a: &x [*x]\n"))
    assert "alias" in error.problems[0].message
