"""The build matrix: product of axes, exclude, include, names, and per-cell views of the spec."""

from __future__ import annotations

import pytest

from tests.conftest import Project
from trtbuild.errors import ConfigError
from trtbuild.spec.loader import load_spec


def with_matrix(project: Project, matrix: str) -> Project:
    project.edit_config("build:\n", f"{matrix}\ncalibration: {{source: random}}\nbuild:\n")
    return project


def cells(project: Project) -> list[str]:
    return [cell.name for cell in load_spec(project.config).cells]


def test_top_level_precision_list_is_an_axis(tiny_project: Project) -> None:
    assert cells(with_matrix(tiny_project, "precision: [fp32, fp16, int8]")) == ["fp32", "fp16", "int8"]


def test_product_of_axes_in_declaration_order(tiny_project: Project) -> None:
    spec = load_spec(
        with_matrix(
            tiny_project, "matrix:\n  precision: [fp32, fp16]\n  build.targets: [[SM86], [SM89, SM120]]"
        ).config
    )
    assert [cell.name for cell in spec.cells] == [
        "fp32-SM86",
        "fp32-SM89+SM120",
        "fp16-SM86",
        "fp16-SM89+SM120",
    ]
    views = {cell.name: cell.view for cell in spec.cells}
    assert views["fp16-SM89+SM120"].build.targets == ("SM89", "SM120")
    assert views["fp32-SM86"].build.targets == ("SM86",)
    assert spec.cells[2].precision == "fp16"


def test_exclude_removes_matching_cells(tiny_project: Project) -> None:
    with_matrix(
        tiny_project,
        "matrix:\n  precision: [fp32, int8]\n  export.opset: [17, 18]\n"
        "  exclude: [{precision: int8, export.opset: 17}]",
    )
    assert cells(tiny_project) == ["fp32-17", "fp32-18", "int8-18"]


def test_include_extends_matching_cells_and_adds_new_ones(tiny_project: Project) -> None:
    with_matrix(
        tiny_project,
        "matrix:\n  precision: [fp32, fp16]\n"
        "  include:\n"
        "    - {precision: fp16, validate.tolerance.fp16.cosine: 0.5}\n"
        "    - {precision: int8}",
    )
    spec = load_spec(tiny_project.config)
    assert [cell.name for cell in spec.cells] == ["fp32", "fp16-0.5", "int8"]
    views = {cell.name: cell.view for cell in spec.cells}
    # A tolerance overridden for one cell only.
    assert views["fp16-0.5"].validate.tolerance["fp16"].cosine == 0.5
    assert views["fp32"].validate.tolerance["fp16"].cosine == 0.999


def test_name_template(tiny_project: Project) -> None:
    with_matrix(
        tiny_project,
        'matrix:\n  precision: [fp32, fp16]\n  export.opset: [17]\n  name: "{precision}_op{export.opset}"',
    )
    assert cells(tiny_project) == ["fp32_op17", "fp16_op17"]


@pytest.mark.parametrize(
    ("matrix", "line", "words"),
    [
        ("matrix:\n  export.opsett: [17, 18]", 14, ["unknown field 'opsett'", "cell"]),
        ("matrix:\n  export.opset: [17, seventeen]", 14, ["cell", "seventeen", "integer"]),
        ('matrix:\n  precision: [fp32, fp16]\n  name: "{precision}-{nope}"', 15, ["nope"]),
        ("matrix:\n  precision: [fp32]\n  exclude: [{precision: fp16}]", 15, ["matches no cell"]),
        ("matrix:\n  export.opset: [17, 17]", 13, ["both named '17'"]),
        ("matrix:\n  model.name: [a, b]", 13, ["cannot vary"]),
    ],
    ids=[
        "unknown field",
        "wrong type",
        "unknown placeholder",
        "exclude matches nothing",
        "duplicate names",
        "model",
    ],
)
def test_matrix_errors_point_at_the_matrix(
    tiny_project: Project, matrix: str, line: int, words: list[str]
) -> None:
    with_matrix(tiny_project, matrix)
    with pytest.raises(ConfigError) as caught:
        load_spec(tiny_project.config)
    text = str(caught.value)
    assert f"{tiny_project.config}:{line}:" in text, text
    for word in words:
        assert word in text, text


def test_misspelt_axis_points_at_the_matrix_entry(tiny_project: Project) -> None:
    with_matrix(tiny_project, "matrix:\n  nope.field: [1, 2]")
    with pytest.raises(ConfigError) as caught:
        load_spec(tiny_project.config)
    text = str(caught.value)
    assert f"{tiny_project.config}:14:" in text and "unknown field 'nope'" in text, text


def test_unmatched_brace_in_name_template(tiny_project: Project) -> None:
    with_matrix(tiny_project, 'matrix:\n  export.opset: [17, 18]\n  name: "{export.opset"')
    with pytest.raises(ConfigError, match="unmatched brace"):
        load_spec(tiny_project.config)
