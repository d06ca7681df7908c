"""Issue 13, defect 4: tiny configs that expanded without bound. Each is now a config error (exit 2)
at the line that goes past the bound, before anything is expanded.

The CLI runs under a 2 GiB address-space limit, so the old behaviour (an alias bomb reaching 4 GB
in 48 s, then a MemoryError traceback) fails these tests in seconds instead of exhausting memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from tests.conftest import TINY_CONFIG, Project

_ADDRESS_SPACE = 2 * 1024**3


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE, _ADDRESS_SPACE))


def _plan(project: Project, *, limited: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRTBUILD_CACHE_DIR": str(project.cache)}
    env.pop("TRTBUILD_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "trtbuild", "plan", str(project.config)],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        # A valid plan imports the model's module, hence torch: its address space is not bounded.
        preexec_fn=_limited if limited else None,
    )


def _alias_bomb() -> str:
    """The 1 KB "billion laughs": ten levels of nine aliases each, 9**10 strings."""
    lines = ["laughs:", "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def _merge_bomb() -> str:
    """Merge keys doubling a mapping 30 times: 2**30 keys."""
    lines = ["merged:", "  m0: &m0 {a: 1, b: 2}"]
    lines += [f"  m{i}: &m{i} {{<<: [*m{i - 1}], k{i}: {{<<: *m{i - 1}}}}}" for i in range(1, 30)]
    return "\n".join(lines) + "\n"


def _string_bomb() -> str:
    """A long string repeated by aliases: few values, but 1.9 billion characters in any JSON of the
    document (176 KB; it left a 1.8 GB parse-cache file and ended in a MemoryError)."""
    return f'text: [&s "{"x" * 100_000}", {", ".join(["*s"] * 19_000)}]\n'


def _deep() -> str:
    return "model_kwargs_deep: " + "[" * 900 + "]" * 900 + "\n"


def _deep_block() -> str:
    return "".join(f"{'  ' * level}k{level}:\n" for level in range(600)) + "  " * 600 + "leaf: 1\n"


BOMBS = [
    ("alias bomb", _alias_bomb, "more than 20,000 values"),
    ("merge-key bomb", _merge_bomb, "more than 20,000 values"),
    ("string bomb", _string_bomb, "more than 1,000,000 characters"),
    ("flow nesting", _deep, "more than 40 levels deep"),
    ("block nesting", _deep_block, "more than 40 levels deep"),
]


@pytest.mark.parametrize(("what", "make", "words"), BOMBS, ids=[b[0] for b in BOMBS])
def test_unbounded_yaml_is_a_config_error_at_its_line(
    tiny_project: Project, what: str, make: object, words: str
) -> None:
    tiny_project.config.write_text(TINY_CONFIG + make())  # type: ignore[operator]
    first_line = TINY_CONFIG.count("\n") + 1
    completed = _plan(tiny_project)
    assert completed.returncode == 2, (what, completed.stderr[-2000:])
    assert "Traceback" not in completed.stderr and "internal error" not in completed.stderr
    assert words in completed.stderr, completed.stderr
    line = int(completed.stderr.split(f"{tiny_project.config}:")[1].split(":")[0])
    assert line >= first_line, completed.stderr


def test_a_big_matrix_is_refused_before_its_cells_are_made(tiny_project: Project) -> None:
    # Three 30-value axes: 27,000 cells, which passed 845 MB after 60 s.
    values = "[" + ", ".join(str(i) for i in range(30)) + "]"
    axes = f"matrix:\n  validate.seed: {values}\n  validate.samples: {values}\n  export.opset: {values}\n"
    tiny_project.config.write_text(TINY_CONFIG + axes)
    completed = _plan(tiny_project)
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    matrix_line = TINY_CONFIG.count("\n") + 1
    assert f"{tiny_project.config}:{matrix_line}:" in completed.stderr, completed.stderr
    for words in ("27,000 cells", "validate.seed (30)", "export.opset (30)", "matrix.max_cells: 27000"):
        assert words in completed.stderr, (words, completed.stderr)


def test_max_cells_is_the_limit_the_config_sets(tiny_project: Project) -> None:
    matrix = "matrix:\n  validate.seed: [1, 2]\n  export.opset: [17, 18]\n"
    tiny_project.config.write_text(TINY_CONFIG + matrix)
    assert _plan(tiny_project, limited=False).returncode == 0
    tiny_project.edit_config("matrix:\n", "matrix:\n  max_cells: 3\n")
    completed = _plan(tiny_project)
    assert completed.returncode == 2
    assert "4 cells" in completed.stderr and "the 3 allowed" in completed.stderr, completed.stderr
