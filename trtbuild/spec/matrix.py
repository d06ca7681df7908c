"""The build matrix: axes over any field by dotted path, GitHub-Actions-style include / exclude, names.

    matrix:
      precision: [fp32, fp16, int8]
      build.targets: [[SM86], [SM89]]
      exclude: [{precision: int8, build.targets: [SM86]}]
      include: [{precision: fp8, build.targets: [SM89]}]
      name: "{precision}-{build.targets}"

A top-level `precision: [a, b]` is the axis `precision`. Each cell is the config with its values
written at their dotted paths; the loader validates and normalises every cell's document on its own,
and the resolver merges the tasks cells have in common.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import Location, Problem, printable
from trtbuild.spec.model import FieldPath
from trtbuild.spec.names import name_problem
from trtbuild.spec.yamlmarks import KEY_MARK, problem_at

RESERVED = ("include", "exclude", "name", "max_cells")
# Planning takes about 0.9 s per 1,000 cells (bench/plan_scale.py) and its memory grows with them:
# more cells than this is far more likely a mistake (three 30-value axes) than a plan.
DEFAULT_MAX_CELLS = 1000
# Fields that say which model a config is about, not how to build it: not matrix axes.
NOT_AXES = ("model.name", "matrix", "version")
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True)
class MatrixCell:
    name: str
    values: dict[str, Any]  # dotted path -> value
    sources: dict[str, FieldPath]  # dotted path -> where in the YAML its value was written


def expand(document: Mapping[str, Any], marks: Mapping[FieldPath, Location], file: Path) -> list[MatrixCell]:
    """The cells of `document`'s matrix, in order. Raises ConfigError for a malformed matrix."""
    from trtbuild.errors import ConfigError

    problems: list[Problem] = []
    axes = _axes(document, marks, problems)
    matrix = document.get("matrix", {})
    _check_size(axes, matrix, marks)
    cells = [_cell(axes, combination) for combination in itertools.product(*(range(len(v)) for _, v in axes))]
    for index, entry in enumerate(matrix.get("exclude", [])):
        before = len(cells)
        cells = [cell for cell in cells if not _matches(cell, entry)]
        if len(cells) == before:
            problems.append(
                problem_at(
                    marks,
                    ("matrix", "exclude", index),
                    "this exclude entry matches no cell",
                    "check its keys and values against the matrix axes",
                )
            )
    axis_names = [name for name, _ in axes]
    for index, entry in enumerate(matrix.get("include", [])):
        cells = _include(cells, entry, axis_names, ("matrix", "include", index))
    if not cells:
        problems.append(
            problem_at(marks, ("matrix",), "the matrix has no cells left", "exclude fewer cells", at_key=True)
        )
    problems += _cell_problems(cells, marks, precision_axis=isinstance(document.get("precision"), list))
    named = _named(cells, axis_names, matrix.get("name"), marks, problems)
    if problems:
        raise ConfigError(_unique(problems))
    return named


def _axes(
    document: Mapping[str, Any], marks: Mapping[FieldPath, Location], problems: list[Problem]
) -> list[tuple[str, list[tuple[Any, FieldPath]]]]:
    """(dotted path, [(value, where it is written)]) per axis, the top-level precision list first."""
    axes: list[tuple[str, list[tuple[Any, FieldPath]]]] = []
    precision = document.get("precision")
    matrix = document.get("matrix", {})
    if isinstance(precision, list):
        if "precision" in matrix:
            problems.append(
                problem_at(
                    marks,
                    ("matrix", "precision"),
                    "precision is given twice",
                    "list the precisions either in `precision:` or in `matrix.precision`",
                    at_key=True,
                )
            )
        axes.append(("precision", [(value, ("precision", i)) for i, value in enumerate(precision)]))
    for name, values in matrix.items():
        if name not in RESERVED:
            axes.append((name, [(value, ("matrix", name, i)) for i, value in enumerate(values)]))
    return axes


def _check_size(
    axes: list[tuple[str, list[tuple[Any, FieldPath]]]],
    matrix: Mapping[str, Any],
    marks: Mapping[FieldPath, Location],
) -> None:
    """Refuse a matrix of more than `max_cells` cells from its axes' lengths, before making any."""
    from trtbuild.errors import ConfigError

    limit = matrix.get("max_cells", DEFAULT_MAX_CELLS)
    includes = len(matrix.get("include", []))
    count = math.prod(len(values) for _, values in axes) + includes
    if count <= limit:
        return
    sizes = " x ".join(f"{name} ({len(values)})" for name, values in axes)
    extra = f" + {includes} include entries" if includes else ""
    raise ConfigError(
        problem_at(
            marks,
            ("matrix",),
            f"the matrix would have {count:,} cells: {sizes}{extra}, more than the {limit:,} allowed"
            + ("" if "max_cells" in matrix else " by default"),
            f"shorten an axis, or set `matrix.max_cells: {count}` if you mean it (planning takes about "
            "1 s per 1,000 cells; `exclude` entries are applied after this count)",
            at_key=True,
        )
    )


def _cell_problems(
    cells: list[Cell], marks: Mapping[FieldPath, Location], *, precision_axis: bool
) -> list[Problem]:
    """A cell whose precision is a list (or left to a top-level list of precisions: an `include`
    entry that adds a cell without one), or that varies a field that cannot vary."""
    found: list[Problem] = []
    for cell in cells:
        if precision_axis and "precision" not in cell[0]:
            found.append(
                problem_at(
                    marks,
                    next(iter(cell[1].values()))[:-1],
                    "this include entry adds a cell without a precision, and `precision:` lists several",
                    "add `precision: fp32` (or another) to the entry, or make it match existing cells",
                )
            )
        if isinstance(cell[0].get("precision"), list):
            found.append(
                problem_at(
                    marks,
                    cell[1]["precision"],
                    "a cell's precision is one precision, found a list",
                    "list the precisions as the axis's values: precision: [fp32, fp16], not [[fp32, fp16]]",
                )
            )
        for path in cell[0]:
            if path.startswith(NOT_AXES):
                found.append(
                    problem_at(
                        marks,
                        ("matrix",),
                        f"'{path}' cannot vary across cells",
                        "make a separate config for another model",
                        at_key=True,
                    )
                )
    return found


Cell = tuple[dict[str, Any], dict[str, FieldPath]]


def _cell(axes: list[tuple[str, list[tuple[Any, FieldPath]]]], combination: tuple[int, ...]) -> Cell:
    values = {name: options[i][0] for (name, options), i in zip(axes, combination, strict=True)}
    sources = {name: options[i][1] for (name, options), i in zip(axes, combination, strict=True)}
    return values, sources


def _matches(cell: Cell, entry: Mapping[str, Any]) -> bool:
    return all(key in cell[0] and cell[0][key] == value for key, value in entry.items())


def _include(
    cells: list[Cell], entry: Mapping[str, Any], axis_names: list[str], where: FieldPath
) -> list[Cell]:
    """GitHub Actions' rule: an entry whose axis values all match existing cells extends them with
    its other keys; an entry that matches none (or would overwrite an axis value) is a new cell."""
    sources = {key: (*where, key) for key in entry}
    on_axes = {key: value for key, value in entry.items() if key in axis_names}
    extra = {key: value for key, value in entry.items() if key not in axis_names}
    matching = [cell for cell in cells if _matches(cell, on_axes)] if on_axes else []
    if not matching:
        return [*cells, (dict(entry), sources)]
    result = []
    for cell in cells:
        if cell in matching:
            values, cell_sources = dict(cell[0]), dict(cell[1])
            values.update(extra)
            cell_sources.update({key: sources[key] for key in extra})
            result.append((values, cell_sources))
        else:
            result.append(cell)
    return result


def _named(
    cells: list[Cell],
    axis_names: list[str],
    template: str | None,
    marks: Mapping[FieldPath, Location],
    problems: list[Problem],
) -> list[MatrixCell]:
    """The cells with their names; problems with the name template or duplicate names are added to
    `problems`, and a cell the template cannot name is left out."""
    if template is not None and cells and _has_unmatched_brace(template):
        # Wrong for every cell alike: said once, and no cell is named. (With no cells there is
        # nothing to name, and expand() has already said the matrix is empty.)
        problems.append(
            problem_at(
                marks,
                ("matrix", "name"),
                f"the name template {template!r} has an unmatched brace",
                "write each placeholder as {axis}, e.g. '{precision}-{export.opset}'",
            )
        )
        return []
    named: list[MatrixCell] = []
    for values, sources in cells:
        name = _cell_name(values, axis_names, template, marks, problems)
        if name is not None:
            named.append(MatrixCell(name=name, values=values, sources=sources))
    _check_unique_names(named, marks, problems)
    return [cell for cell in named if not _bad_name(cell, template, marks, problems)]


def _bad_name(
    cell: MatrixCell, template: str | None, marks: Mapping[FieldPath, Location], problems: list[Problem]
) -> bool:
    """Add a problem if the cell's name cannot name its folder (names.py); at the template, or at
    the value that named the cell."""
    reason = name_problem(cell.name)
    if reason is None:
        return False
    at = ("matrix", "name") if template is not None else next(iter(cell.sources.values()), ("matrix",))
    hint = (
        "change the `name` template"
        if template is not None
        else "add a `name` template, e.g. name: 'opset{export.opset}', or change the value"
    )
    shown = printable(cell.name[:80], newlines=False) + ("..." if len(cell.name) > 80 else "")
    problems.append(problem_at(marks, at, f"cell name '{shown}': {reason}", hint))
    return True


def _has_unmatched_brace(template: str) -> bool:
    rest = _PLACEHOLDER.sub("", template)
    return "{" in rest or "}" in rest


def _cell_name(
    values: dict[str, Any],
    axis_names: list[str],
    template: str | None,
    marks: Mapping[FieldPath, Location],
    problems: list[Problem],
) -> str | None:
    """The cell's name: its values joined in axis order, or the template filled in. None (with a
    problem) when the template names a value the cell does not set."""
    if template is None:
        ordered = [name for name in axis_names if name in values] + [k for k in values if k not in axis_names]
        return "-".join(_text(values[key]) for key in ordered) or "default"
    missing = [key for key in _PLACEHOLDER.findall(template) if key not in values]
    if missing:
        problems.append(
            problem_at(
                marks,
                ("matrix", "name"),
                f"the name template uses {missing}, which cell {values} does not set",
                f"placeholders: {axis_names}",
            )
        )
        return None
    return _UNSAFE.sub("_", _fill(template, values))


def _check_unique_names(
    named: list[MatrixCell], marks: Mapping[FieldPath, Location], problems: list[Problem]
) -> None:
    seen: dict[str, MatrixCell] = {}
    for cell in named:
        if cell.name in seen:
            problems.append(
                problem_at(
                    marks,
                    ("matrix",),
                    f"two cells are both named '{cell.name}': {seen[cell.name].values} and {cell.values}",
                    "add a `name` template that tells them apart",
                    at_key=True,
                )
            )
        seen[cell.name] = cell


def _fill(template: str, values: Mapping[str, Any]) -> str:
    def substitute(match: re.Match[str]) -> str:
        return _text(values[match.group(1)])

    return _PLACEHOLDER.sub(substitute, template)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(_text(item) for item in value)
    if isinstance(value, dict):
        return "_".join(f"{k}{_text(v)}" for k, v in value.items())
    return _UNSAFE.sub("_", str(value).lower() if isinstance(value, bool) else str(value))


def _copied(value: Any) -> Any:
    """A copy of a loaded document's dicts and lists (its scalars are immutable): `copy.deepcopy`,
    at a third of the cost, which a matrix pays once per cell."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


def cell_document(document: Mapping[str, Any], cell: MatrixCell) -> dict[str, Any]:
    """The config as this cell sees it: the matrix gone, each value written at its dotted path."""
    # Not the matrix: copying its lists for each of its cells made loading quadratic.
    result: dict[str, Any] = {key: _copied(value) for key, value in document.items() if key != "matrix"}
    for path, value in cell.values.items():
        target = result
        parts = path.split(".")
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[parts[-1]] = _copied(value)
    return result


def document_marks(marks: Mapping[FieldPath, Location]) -> dict[FieldPath, Location]:
    """The marks of everything but the matrix: what each cell's marks start from (computed once per
    config: a matrix's own marks grow with its cells)."""
    return {path: location for path, location in marks.items() if not path or path[0] != "matrix"}


def cell_marks(
    marks: Mapping[FieldPath, Location],
    cell: MatrixCell,
    base: Mapping[FieldPath, Location] | None = None,
) -> dict[FieldPath, Location]:
    """Marks for a cell's document: a value set by the matrix points at where the matrix wrote it.
    `base`: `document_marks(marks)`, when the caller has it."""
    result = dict(document_marks(marks) if base is None else base)
    for path, source in cell.sources.items():
        location = marks.get(source)
        if location is None:
            continue
        parts = tuple(path.split("."))
        # The value the matrix replaced had items and fields of its own: their marks point at text
        # this cell does not read, so its problems point at the matrix instead.
        for stale in [mark for mark in result if len(mark) > len(parts) and mark[: len(parts)] == parts]:
            del result[stale]
        result[parts] = location
        # Fields the matrix creates (a misspelt axis, say) have no mark of their own: point them,
        # and their keys, at the matrix entry that wrote them rather than at line 1.
        for end in range(1, len(parts) + 1):
            result.setdefault(parts[:end], location)
            result.setdefault((*parts[:end], KEY_MARK), location)
    return result


def _unique(problems: list[Problem]) -> list[Problem]:
    return list({(p.message, p.field_path): p for p in problems}.values())
