"""Issue 13, defect 8: model and cell names that could not name a folder. One validator
(trtbuild/spec/names.py) now refuses them all as config errors at their line, before anything runs."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_CONFIG, Project
from trtbuild.exec.owners import OWNER_FILE
from trtbuild.report.write import NAMES as REPORT_FILES
from trtbuild.spec.names import MODEL_FOLDER_FILES

_MATRIX_LINE = TINY_CONFIG.count("\n") + 2  # the first axis, under `matrix:`

_REPORT_CELL = TINY_CONFIG + "matrix:\n  model.kwargs.tag: [report.json, a]\n"
# (what, the config's text, the line the message points at, words it must contain)
BAD_NAMES = [
    ("newline in model.name", TINY_CONFIG.replace("name: tiny", 'name: "tiny\\n"'), 2, "tiny\\x0a"),
    ("300-character model.name", TINY_CONFIG.replace("name: tiny", f"name: {'m' * 300}"), 2, "128 bytes"),
    (
        "300-character cell name",
        TINY_CONFIG + f'matrix:\n  validate.seed: [1, 2]\n  name: "{"c" * 300}{{validate.seed}}"\n',
        _MATRIX_LINE + 1,
        "128 bytes",
    ),
    ("cell '.'", TINY_CONFIG + 'matrix:\n  model.kwargs.tag: [".", "a"]\n', _MATRIX_LINE, "'.'"),
    ("cell '..'", TINY_CONFIG + 'matrix:\n  model.kwargs.tag: ["..", "a"]\n', _MATRIX_LINE, "'..'"),
    ("cell 'report.json'", _REPORT_CELL, _MATRIX_LINE, "writes"),
]


@pytest.mark.parametrize(("what", "text", "line", "words"), BAD_NAMES, ids=[b[0] for b in BAD_NAMES])
def test_a_name_that_cannot_be_a_folder_is_a_config_error(
    tiny_project: Project, what: str, text: str, line: int, words: str
) -> None:
    tiny_project.config.write_text(text)
    completed = tiny_project.trtbuild("run", str(tiny_project.config), "--out", str(tiny_project.out))
    assert completed.returncode == 2, (what, completed.stderr[-3000:])
    assert "Traceback" not in completed.stderr and "internal error" not in completed.stderr
    assert f"{tiny_project.config}:{line}:" in completed.stderr, completed.stderr
    assert words in completed.stderr, completed.stderr
    assert not tiny_project.out.exists()


def test_the_names_beside_cells_are_every_file_the_model_folder_gets() -> None:
    assert {*REPORT_FILES, OWNER_FILE} <= set(MODEL_FOLDER_FILES)
