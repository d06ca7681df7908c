"""`load_spec`: YAML file -> validated, normalised, checked `Spec`, or one ConfigError listing every problem.

The stages run in order and each stops the load if it found problems: YAML (syntax, duplicate keys),
schema (types, unknown fields, ranges), profiles by dim name (`profiles.py`, which expands them to
shapes per input), then semantic checks on the normalised spec (profiles against inputs, the model
source, the checkpoint). The semantic checks need a well-typed document, so a config with schema
errors reports those first.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from trtbuild.errors import ConfigError, Location, Problem, printable
from trtbuild.spec import matrix
from trtbuild.spec.lockpath import lock_path_problems
from trtbuild.spec.model import (
    AUTOCAST_PRECISIONS,
    DEFAULT_TOLERANCES,
    QUANTIZED_PRECISIONS,
    AutocastSpec,
    BuildSpec,
    CalibrationSpec,
    Cell,
    Choice,
    CodeSpec,
    Constant,
    ExportSpec,
    FieldPath,
    Integers,
    Mask,
    ModelSpec,
    NpzValues,
    OutputSpec,
    Preprocess,
    ProfileSpec,
    ShapeRange,
    Spec,
    TensorSpec,
    Tolerance,
    Uniform,
    ValidateSpec,
    Values,
    format_field_path,
    is_integral,
)
from trtbuild.spec.names import name_problem
from trtbuild.spec.profiles import per_input_profiles, profile_problems
from trtbuild.spec.semantic import SpecCheck, check_spec
from trtbuild.spec.source import module_search_path
from trtbuild.spec.validate import ValidatedDocuments, sort_problems, validate_document
from trtbuild.spec.value_checks import value_problems
from trtbuild.spec.yamlmarks import ParsedConfigs, load_yaml

_SIZE_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(" + "|".join(_SIZE_UNITS) + r")\s*$")


def load_spec(
    path: Path,
    *,
    checks: Sequence[SpecCheck] = (),
    validated: ValidatedDocuments | None = None,
    parsed: ParsedConfigs | None = None,
) -> Spec:
    """Load, validate and normalise the config at `path`. Raises ConfigError with every problem found.

    A config with a matrix is validated and normalised once per cell, on the document as that cell
    sees it; problems common to several cells are reported once. `checks` are more checks of each
    cell's view, from the layers above (a task kind's checks of the config it reads); `validated`
    remembers documents that passed the schema, so an unchanged config is not validated again, and
    `parsed` configs parsed before, so an unchanged file is not parsed (nor PyYAML imported) again.
    """
    path = Path(path).absolute()
    document, marks = load_yaml(path, parsed)
    problems = validate_document(document, marks, path, validated) + _non_finite(document, marks)
    problems = problems or _model_name(document["model"]["name"], marks)
    if problems:
        raise ConfigError(problems)
    cells: list[Cell] = []
    base_marks = matrix.document_marks(marks)
    for matrix_cell in matrix.expand(document, marks, path):
        view_document = matrix.cell_document(document, matrix_cell)
        view_marks = matrix.cell_marks(marks, matrix_cell, base_marks)
        # The semantic checks need a well-typed document, with profiles that expand to shapes per input.
        own = _named(validate_document(view_document, view_marks, path, validated), matrix_cell)
        own = own or _named(profile_problems(view_document, view_marks), matrix_cell)
        if own:
            problems += own
            continue
        view = normalise(view_document, path, view_marks)
        search_path = module_search_path(path.parent)
        problems += _named(check_spec(view, search_path, (value_problems, *checks)), matrix_cell)
        precision = view.cells[0].precision
        # Without a matrix the one cell is named after its precision: build/<model>/fp32/.
        cell_name = matrix_cell.name if matrix_cell.values else precision
        cells.append(Cell(cell_name, precision, matrix_cell.values, view))
    if problems:
        raise ConfigError(sort_problems(_unique(problems)))
    return dataclasses.replace(cells[0].view, cells=tuple(cells), marks=dict(marks))


def _non_finite(value: Any, marks: dict[FieldPath, Location], at: FieldPath = ()) -> list[Problem]:
    """`.nan` and `.inf` are valid YAML floats that pass every schema bound: no field means them."""
    if isinstance(value, float) and not math.isfinite(value):
        return [
            Problem(
                f"expected a finite number, found {value}",
                marks.get(at),
                format_field_path(at),
                "write a number; tolerances that should not be checked are left out",
            )
        ]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _non_finite(item, marks, (*at, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _non_finite(item, marks, (*at, index))]
    return []


def _model_name(name: str, marks: dict[FieldPath, Location]) -> list[Problem]:
    """The schema's pattern lets a trailing newline through (`$` matches before one, in Python's
    re as in JSON Schema's ECMA regexes) and has no length limit: names.py has the whole rule."""
    reason = name_problem(name)
    if reason is None:
        return []
    shown = printable(name[:80], newlines=False) + ("..." if len(name) > 80 else "")
    hint = "the model's outputs go to <out>/<model.name>/: use letters, digits, '.', '_' and '-'"
    return [Problem(f"model name '{shown}': {reason}", marks.get(("model", "name")), "model.name", hint)]


def _named(problems: list[Problem], cell: matrix.MatrixCell) -> list[Problem]:
    """Say which cell a problem is in when the cell's own matrix values are involved."""
    named = []
    for problem in problems:
        if any(problem.field_path.startswith(axis) for axis in cell.values):
            problem = dataclasses.replace(problem, message=f"cell {cell.name}: {problem.message}")
        named.append(problem)
    return named


def _unique(problems: list[Problem]) -> list[Problem]:
    return list({(str(p.location), p.field_path, p.message): p for p in problems}.values())


def parse_size(value: int | str) -> int:
    """Bytes from an int or a size such as '4GiB', '512MiB', '1.5GB' (KB/MB/GB are powers of 1000)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"not a size: {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])


def normalise(document: dict[str, Any], path: Path, marks: dict[FieldPath, Location]) -> Spec:
    """Turn a schema-valid document into a fully defaulted Spec."""
    precision = document.get("precision", "fp32")
    assert isinstance(precision, str), "the matrix gives every cell a single precision"
    return Spec(
        path=path,
        model=_model(document["model"], path.parent),
        inputs=tuple(_input(name, raw) for name, raw in document["inputs"].items()),
        outputs=_outputs(document["outputs"]),
        export=_export(document.get("export", {})),
        simplify=bool(document.get("simplify", True)),
        profiles=tuple(_profile(name, raw) for name, raw in per_input_profiles(document).items()),
        build=_build(document.get("build", {})),
        validate=_validate(document.get("validate", {}), path.parent),
        cells=(Cell(name=precision, precision=precision),),
        autocast=_autocast(document.get("autocast", {})),
        calibration=_calibration(document.get("calibration"), path.parent),
        probe=bool(document.get("probe", True)),
        code=CodeSpec(exclude=tuple(document.get("code", {}).get("exclude", ()))),
        marks=dict(marks),
    )


def _model(raw: dict[str, Any], config_dir: Path) -> ModelSpec:
    module, _, attr = raw["source"].partition(":")
    checkpoint = None
    if "checkpoint" in raw:
        # Relative to the config file, not the current directory, so a config works from anywhere.
        checkpoint = Path(os.path.normpath(config_dir / Path(raw["checkpoint"]).expanduser()))
    return ModelSpec(
        name=raw["name"], module=module, attr=attr, kwargs=dict(raw.get("kwargs", {})), checkpoint=checkpoint
    )


def _export(raw: dict[str, Any]) -> ExportSpec:
    return ExportSpec(opset=int(raw.get("opset", 17)), exporter=raw.get("exporter", "torchscript"))


def _dim(dim: int | float | str) -> int | str:
    # The schema accepts 3.0 as an integer (JSON does not tell them apart); the spec holds ints.
    return dim if isinstance(dim, str) else int(dim)


def _input(name: str, raw: dict[str, Any]) -> TensorSpec:
    dtype = raw.get("dtype", "float32")
    return TensorSpec(
        name=name,
        shape=tuple(_dim(d) for d in raw["shape"]),
        dtype=dtype,
        values=_values(name, dtype, raw),
    )


def _values(name: str, dtype: str, raw: dict[str, Any]) -> Values:
    """The input's value generator: `values`, else `range` (whole numbers on an integer input),
    else the default: [0, 1) for floats, 0..9 for integers (indices, token ids: [0, 1) would make
    them all zero), both values for bool."""
    if "values" in raw:
        return _value_generator(name, raw["values"])
    if "range" in raw:
        low, high = raw["range"]
        return Integers(int(low), int(high)) if is_integral(dtype) else Uniform(float(low), float(high))
    if dtype == "bool":
        return Choice()
    return Integers() if is_integral(dtype) else Uniform()


def _value_generator(name: str, raw: dict[str, Any]) -> Values:
    kind = raw["kind"]
    if kind == "uniform":
        return Uniform(float(raw["low"]), float(raw["high"]))
    if kind == "integers":
        return Integers(int(raw["low"]), int(raw["high"]))
    if kind == "mask":
        valid = raw.get("valid")
        return Mask(None if valid is None else (int(valid[0]), int(valid[1])))
    if kind == "choice":
        return Choice(tuple(raw["of"]))
    if kind == "constant":
        return Constant(raw["value"])
    return NpzValues(path=raw["path"], key=raw.get("key", name))


def _outputs(raw: list[str] | dict[str, Any]) -> tuple[OutputSpec, ...]:
    if isinstance(raw, list):
        return tuple(OutputSpec(name) for name in raw)
    outputs = []
    for name, value in raw.items():
        shape = value.get("shape")
        dims = None if shape is None else tuple(_dim(d) for d in shape)
        outputs.append(OutputSpec(name, dims, bool(value.get("classifier", False))))
    return tuple(outputs)


def _profile(name: str, raw: dict[str, dict[str, list[int]]]) -> ProfileSpec:
    shapes = {
        input_name: ShapeRange(
            min=tuple(int(d) for d in ranges["min"]),
            opt=tuple(int(d) for d in ranges["opt"]),
            max=tuple(int(d) for d in ranges["max"]),
        )
        for input_name, ranges in raw.items()
    }
    return ProfileSpec(name, shapes)


def _build(raw: dict[str, Any]) -> BuildSpec:
    workspace = raw.get("workspace")
    level = raw.get("optimization_level")
    return BuildSpec(
        backend=raw.get("backend", "auto"),
        workspace=None if workspace is None else parse_size(workspace),
        optimization_level=None if level is None else int(level),
        targets=tuple(raw.get("targets", ())),
    )


def _validate(raw: dict[str, Any], config_dir: Path) -> ValidateSpec:
    tolerance = dict(DEFAULT_TOLERANCES)
    for precision, gates in raw.get("tolerance", {}).items():
        # A precision given in the config replaces its default gates as a whole: mixing a user's atol
        # with a default rtol would gate on numbers nobody wrote down.
        custom = {name: (b.get("min"), b.get("max")) for name, b in gates.get("custom", {}).items()}
        numbers = {gate: float(value) for gate, value in gates.items() if gate != "custom"}
        tolerance[precision] = Tolerance(**numbers, custom=custom)
    data = raw.get("data")
    return ValidateSpec(
        samples=int(raw.get("samples", 4)),
        seed=int(raw.get("seed", 0)),
        tolerance=tolerance,
        metric=raw.get("metric"),
        data=(config_dir / data["path"]).absolute() if data and "path" in data else None,
        data_batch=int(data.get("batch", 1)) if data else 1,
        holdout=int(data["holdout"]) if data and "holdout" in data else None,
        min_low_precision=_min_low_precision(raw.get("min_low_precision")),
    )


def _min_low_precision(raw: float | dict[str, float] | None) -> dict[str, float]:
    """One number gates every precision below fp32; a mapping, the precisions it names."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {precision: float(share) for precision, share in raw.items()}
    return {precision: float(raw) for precision in (*AUTOCAST_PRECISIONS, *QUANTIZED_PRECISIONS)}


def _autocast(raw: dict[str, Any]) -> AutocastSpec:
    depth = raw.get("max_depth_of_reduction")
    return AutocastSpec(
        keep_io_types=bool(raw.get("keep_io_types", True)),
        exclude_nodes=tuple(raw.get("exclude_nodes", ())),
        exclude_op_types=tuple(raw.get("exclude_op_types", ())),
        data_max=float(raw.get("data_max", AutocastSpec.data_max)),
        init_max=float(raw.get("init_max", AutocastSpec.init_max)),
        max_depth_of_reduction=None if depth is None else int(depth),
    )


def _calibration(raw: dict[str, Any] | None, config_dir: Path) -> CalibrationSpec | None:
    if raw is None:
        return None
    path = raw.get("path")
    source = raw["source"]
    # Random data needs a count; real data (images, a function's batches) is all used unless capped.
    default_samples = 16 if source == "random" else None
    samples = raw.get("samples", default_samples)
    return CalibrationSpec(
        source=source,
        path=(config_dir / path).absolute() if path is not None else None,
        samples=int(samples) if samples is not None else None,
        seed=int(raw.get("seed", 0)),
        input=raw.get("input"),
        function=raw.get("function"),
        preprocess=_preprocess(raw.get("preprocess", {})),
    )


def _preprocess(raw: dict[str, Any]) -> Preprocess:
    def size(value: int | list[int]) -> tuple[int, int]:
        return (int(value), int(value)) if isinstance(value, (int, float)) else (int(value[0]), int(value[1]))

    def per_channel(value: float | list[float]) -> tuple[float, ...]:
        return tuple(float(v) for v in (value if isinstance(value, list) else [value]))

    resize = raw.get("resize")
    return Preprocess(
        # An int resizes the shorter side and so stays an int; [H, W] is an exact size.
        resize=None if resize is None else int(resize) if isinstance(resize, (int, float)) else size(resize),
        crop=size(raw["crop"]) if "crop" in raw else None,
        scale=float(raw["scale"]) if "scale" in raw else None,
        mean=per_channel(raw.get("mean", 0.0)),
        std=per_channel(raw.get("std", 1.0)),
        layout=raw.get("layout", "NCHW"),
    )


def load_specs(
    configs: Iterable[Path | str],
    *,
    checks: Sequence[SpecCheck] = (),
    validated: ValidatedDocuments | None = None,
    parsed: ParsedConfigs | None = None,
) -> list[Spec]:
    """Load and check every config; all problems of all configs are reported together."""
    specs: list[Spec] = []
    paths = [Path(config).absolute() for config in configs]
    problems: list[Problem] = lock_path_problems(paths)
    for config in paths:
        if problems and config in {p.location.file for p in problems if p.location}:
            continue
        try:
            specs.append(load_spec(Path(config), checks=checks, validated=validated, parsed=parsed))
        except ConfigError as error:
            problems += error.problems
    first: dict[str, Spec] = {}
    for spec in specs:
        other = first.setdefault(spec.model.name, spec)
        if other is not spec:
            problems.append(
                Problem(
                    f"model name '{spec.model.name}' is also used by {other.path}: both would build into "
                    f"the same {spec.model.name}/ folder of the output folder (--out, build/ by default)",
                    location=spec.location(("model", "name")),
                    field_path="model.name",
                    hint="give each config's model its own name, or make one config with a matrix",
                )
            )
    if problems:
        raise ConfigError(problems)
    return specs
