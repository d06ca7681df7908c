"""Broken configs through the real CLI: one clear message with file:line, exit 2, nothing run."""

from __future__ import annotations

import pytest

from tests.conftest import Project

# (what is broken, old text, new text, the line the message must point at, words it must contain)
BROKEN = [
    ("unknown field", "export: {opset: 17,", "export: {opsett: 17,", 9, ["opsett", "opset"]),
    ("wrong type", "opset: 17", 'opset: "seventeen"', 9, ["opset", "integer", "seventeen"]),
    ("min > max", "min: [1, 3, 16, 16]", "min: [8, 3, 16, 16]", 12, ["min", "max"]),
    (
        "dynamic input missing from a profile",
        "  input: {shape: [batch, 3, 16, 16], dtype: float32}",
        "  input: {shape: [batch, 3, 16, 16], dtype: float32}\n  scale: {shape: [batch, 1, 1, 1]}",
        12,
        ["scale", "default", "batch"],
    ),
    (
        "unimportable model source",
        "source: tinynet:TinyNet",
        "source: nosuchpkg.models:Net",
        3,
        ["nosuchpkg"],
    ),
]


@pytest.mark.parametrize(("what", "old", "new", "line", "words"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_gives_one_clear_message(
    tiny_project: Project, what: str, old: str, new: str, line: int, words: list[str]
) -> None:
    tiny_project.edit_config(old, new)
    for verb in (["run", "--out", str(tiny_project.out)], ["plan"]):
        completed = tiny_project.trtbuild(*verb, str(tiny_project.config))
        assert completed.returncode == 2, (what, completed.stderr)
        assert "Traceback" not in completed.stderr
        assert "1 problem(s)" in completed.stderr, completed.stderr
        assert f"{tiny_project.config}:{line}:" in completed.stderr, completed.stderr
        for word in words:
            assert word in completed.stderr, (word, completed.stderr)
        assert "hint:" in completed.stderr
    assert not tiny_project.out.exists()
    assert not (tiny_project.cache / "ac").exists()


def test_missing_config_file_is_exit_2(tiny_project: Project) -> None:
    completed = tiny_project.trtbuild("run", str(tiny_project.root / "nope.yaml"))
    assert completed.returncode == 2
    assert "nope.yaml" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_bad_usage_is_exit_2(tiny_project: Project) -> None:
    assert tiny_project.trtbuild("run").returncode == 2
    assert tiny_project.trtbuild("run", str(tiny_project.config), "-j", "0").returncode == 2


def test_schema_command_prints_the_schema(tiny_project: Project) -> None:
    import json

    completed = tiny_project.trtbuild("schema", check=True)
    schema = json.loads(completed.stdout)
    assert schema["$schema"].endswith("2020-12/schema")
    assert "model" in schema["properties"]
