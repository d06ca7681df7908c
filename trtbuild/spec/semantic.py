"""Checks on a normalised Spec that JSON Schema cannot express: profiles against inputs, symbolic
dims, the model source and the checkpoint. Each finding is a Problem pointing at the line to change.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence

from trtbuild.errors import Problem
from trtbuild.spec.model import (
    ConcreteShape,
    FieldPath,
    ProfileSpec,
    Shape,
    ShapeRange,
    Spec,
    TensorSpec,
    format_field_path,
)
from trtbuild.spec.source import close_module_names, locate_module, missing_part, module_search_path
from trtbuild.spec.validate import did_you_mean, sort_problems
from trtbuild.spec.yamlmarks import key_location

KINDS = ("min", "opt", "max")
# Placeholder min/opt/max of a symbolic dim in suggested snippets, when no other input fixes them.
_SNIPPET_RANGE = (1, 8, 32)


# A check of a cell's view from a layer above (a task kind's checks of the config it reads).
SpecCheck = Callable[[Spec], Iterable[Problem]]


def check_spec(spec: Spec, search_path: list[str], checks: Sequence[SpecCheck] = ()) -> list[Problem]:
    """Every semantic problem of `spec`, in file order; model modules are looked for on `search_path`."""
    problems = [
        *(problem for check in checks for problem in check(spec)),
        *_check_profiles(spec),
        *_check_outputs(spec),
        *_check_source(spec, search_path),
        *_check_checkpoint(spec),
        *_check_validate(spec),
        *_check_build(spec),
    ]
    return sort_problems(problems)


def field_problem(spec: Spec, path: FieldPath, message: str, hint: str, *, at_key: bool = False) -> Problem:
    """A problem at `path` of the config (at its key, for a field that should not be there)."""
    location = key_location(spec.marks, path) if at_key else None
    return Problem(message, location or spec.location(path), format_field_path(path), hint)


def shape_text(shape: Shape | ConcreteShape | list[int]) -> str:
    """`[batch, 3, 224, 224]`, as a config spells a shape."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _sizes_text(sizes: tuple[int, int, int]) -> str:
    return "/".join(str(size) for size in sizes)


def _indent(text: str) -> str:
    # Problem.render prints "  hint: " before the first line; line the snippet up under it.
    return text.replace("\n", "\n    ")


# -- profiles -------------------------------------------------------------------------------------


def _check_profiles(spec: Spec) -> Iterator[Problem]:
    inputs = {tensor.name: tensor for tensor in spec.inputs}
    dynamic = [tensor for tensor in spec.inputs if tensor.dynamic_dims]
    if dynamic and not spec.profiles:
        yield _no_profiles(spec, dynamic)
    for profile in spec.profiles:
        yield from _check_profile(spec, profile, inputs, dynamic)


def _no_profiles(spec: Spec, dynamic: list[TensorSpec]) -> Problem:
    first = dynamic[0]
    dims = ", ".join(f"'{d}'" for d in dict.fromkeys(first.dynamic_dims.values()))
    lines = ["profiles:", "  default:"] + [f"    {_snippet_line(t, {})}" for t in dynamic]
    symbols = dict.fromkeys(d for t in dynamic for d in t.dynamic_dims.values())
    by_dim = ", ".join(f"{symbol}: {list(_SNIPPET_RANGE)}" for symbol in symbols)
    lines.append(f"or, by dim name: profiles: {{default: {{{by_dim}}}}}")
    hint = "add a profile (and adjust the sizes of the dynamic dims):\n" + "\n".join(lines)
    return field_problem(
        spec,
        ("inputs", first.name, "shape"),
        f"input '{first.name}' has dynamic dim {dims}, but the config has no `profiles`",
        _indent(hint),
    )


def _snippet_line(tensor: TensorSpec, known: dict[str, tuple[int, int, int]]) -> str:
    """`input: {min: [1, 3], opt: [8, 3], max: [32, 3]}` using sizes already fixed for a symbolic dim."""
    parts = []
    for kind_index, kind in enumerate(KINDS):
        dims = [d if isinstance(d, int) else known.get(d, _SNIPPET_RANGE)[kind_index] for d in tensor.shape]
        parts.append(f"{kind}: {shape_text(dims)}")
    return f"{tensor.name}: {{{', '.join(parts)}}}"


def _check_profile(
    spec: Spec, profile: ProfileSpec, inputs: dict[str, TensorSpec], dynamic: list[TensorSpec]
) -> Iterator[Problem]:
    checked: dict[str, ShapeRange] = {}  # entries whose rank is right, for the symbolic-dim check
    bad_axes: set[tuple[str, int]] = set()
    unknown = [name for name in profile.shapes if name not in inputs]
    for name, ranges in profile.shapes.items():
        path: FieldPath = ("profiles", profile.name, name)
        tensor = inputs.get(name)
        if tensor is None:
            suggestion = did_you_mean(name, inputs)
            hint = (f"did you mean '{suggestion}'? " if suggestion else "") + f"inputs: {', '.join(inputs)}"
            yield field_problem(
                spec, path, f"profile '{profile.name}' names unknown input '{name}'", hint, at_key=True
            )
            continue
        rank_problem = _check_rank(spec, path, tensor, ranges)
        if rank_problem is not None:
            yield rank_problem
            continue
        checked[name] = ranges
        for axis in range(len(tensor.shape)):
            problem = _check_axis(spec, path, tensor, ranges, axis)
            if problem is not None:
                bad_axes.add((name, axis))
                yield problem
    yield from _check_missing(spec, profile, dynamic, checked, unknown)
    yield from _check_symbolic(spec, profile, inputs, checked, bad_axes)


def _check_rank(spec: Spec, path: FieldPath, tensor: TensorSpec, ranges: ShapeRange) -> Problem | None:
    rank = len(tensor.shape)
    lengths = [len(getattr(ranges, kind)) for kind in KINDS]
    wrong = [kind for kind, length in zip(KINDS, lengths, strict=True) if length != rank]
    if not wrong:
        return None
    given = ", ".join(
        f"{kind} has {length}" for kind, length in zip(KINDS, lengths, strict=True) if length != rank
    )
    return field_problem(
        spec,
        (*path, wrong[0]),
        f"input '{tensor.name}' has {rank} dims ({shape_text(tensor.shape)}) but {given}",
        f"give min, opt and max one size per axis of inputs.{tensor.name}.shape",
    )


def _check_axis(
    spec: Spec, path: FieldPath, tensor: TensorSpec, ranges: ShapeRange, axis: int
) -> Problem | None:
    dim = tensor.shape[axis]
    low, opt, high = (getattr(ranges, kind)[axis] for kind in KINDS)
    sizes = _sizes_text((low, opt, high))
    if isinstance(dim, int):
        if low == opt == high == dim:
            return None
        kind = next(k for k, v in zip(KINDS, (low, opt, high), strict=True) if v != dim)
        return field_problem(
            spec,
            (*path, kind, axis),
            f"axis {axis} of input '{tensor.name}' is fixed at {dim}, but min/opt/max give {sizes}",
            f"use {dim} at axis {axis} of min, opt and max, or make the axis dynamic by giving it a name "
            f"in inputs.{tensor.name}.shape",
        )
    if low <= opt <= high:
        return None
    kind = "min" if low > opt or low > high else "opt"
    return field_problem(
        spec,
        (*path, kind, axis),
        f"min/opt/max of axis {axis} ('{dim}') are {sizes}: need min <= opt <= max",
        "min is the smallest size the engine accepts, max the largest, opt the one it is tuned for",
    )


def _check_missing(
    spec: Spec,
    profile: ProfileSpec,
    dynamic: list[TensorSpec],
    checked: dict[str, ShapeRange],
    unknown: list[str],
) -> Iterator[Problem]:
    inputs = {tensor.name: tensor for tensor in spec.inputs}
    known = _symbol_sizes(inputs, checked)
    for tensor in dynamic:
        # A misspelt input name was reported as unknown with "did you mean"; that is the one mistake.
        if tensor.name in profile.shapes or did_you_mean(tensor.name, unknown):
            continue
        dims = ", ".join(f"'{d}' (axis {axis})" for axis, d in tensor.dynamic_dims.items())
        hint = f"add under profiles.{profile.name}:\n  {_snippet_line(tensor, known)}"
        yield field_problem(
            spec,
            ("profiles", profile.name),
            f"profile '{profile.name}' has no shapes for input '{tensor.name}', which has dynamic dim {dims}",
            _indent(hint),
            at_key=True,
        )


def _symbol_sizes(
    inputs: dict[str, TensorSpec], checked: dict[str, ShapeRange]
) -> dict[str, tuple[int, int, int]]:
    sizes: dict[str, tuple[int, int, int]] = {}
    for name, ranges in checked.items():
        for axis, symbol in inputs[name].dynamic_dims.items():
            sizes.setdefault(symbol, (ranges.min[axis], ranges.opt[axis], ranges.max[axis]))
    return sizes


def _check_symbolic(
    spec: Spec,
    profile: ProfileSpec,
    inputs: dict[str, TensorSpec],
    checked: dict[str, ShapeRange],
    bad_axes: set[tuple[str, int]],
) -> Iterator[Problem]:
    """A symbolic dim is one size at run time, so every axis it names needs the same min/opt/max."""
    first: dict[str, tuple[str, int, tuple[int, int, int]]] = {}
    reported: set[str] = set()
    for name, ranges in checked.items():
        for axis, symbol in inputs[name].dynamic_dims.items():
            if (name, axis) in bad_axes or symbol in reported:
                continue
            sizes = (ranges.min[axis], ranges.opt[axis], ranges.max[axis])
            if symbol not in first:
                first[symbol] = (name, axis, sizes)
                continue
            first_name, first_axis, first_sizes = first[symbol]
            if sizes == first_sizes:
                continue
            reported.add(symbol)
            yield field_problem(
                spec,
                ("profiles", profile.name, name, "min"),
                f"dim '{symbol}' is {_sizes_text(sizes)} (min/opt/max) at axis {axis} of input '{name}' "
                f"but {_sizes_text(first_sizes)} at axis {first_axis} of input '{first_name}'",
                f"one dim name is one size at run time: give '{symbol}' the same min, opt and max everywhere "
                f"in profile '{profile.name}', or use different names for independent dims",
            )


# -- outputs --------------------------------------------------------------------------------------


def _check_outputs(spec: Spec) -> Iterator[Problem]:
    input_names = {tensor.name for tensor in spec.inputs}
    symbols = sorted({d for tensor in spec.inputs for d in tensor.dynamic_dims.values()})
    for index, output in enumerate(spec.outputs):
        in_mapping = ("outputs", output.name) in spec.marks
        path: FieldPath = ("outputs", output.name) if in_mapping else ("outputs", index)
        if output.name in input_names:
            yield field_problem(
                spec,
                path,
                f"output '{output.name}' has the same name as an input",
                "ONNX tensor names must be unique: rename the output",
                at_key=in_mapping,
            )
        for axis, dim in enumerate(output.shape or ()):
            if isinstance(dim, str) and dim not in symbols:
                suggestion = did_you_mean(dim, symbols)
                hint = f"did you mean '{suggestion}'? " if suggestion else ""
                hint += "an output's dims are fixed sizes or dim names used by the inputs"
                hint += f" ({', '.join(symbols)})" if symbols else " (the inputs have none)"
                yield field_problem(
                    spec, (*path, "shape", axis), f"dim '{dim}' does not appear in any input", hint
                )


# -- model source, checkpoint -------------------------------------------------------------------


def _check_source(spec: Spec, search_path: list[str]) -> Iterator[Problem]:
    module = spec.model.module
    if locate_module(module, search_path) is not None:
        return
    missing, parent_is_module = missing_part(module, search_path)
    message = f"cannot import '{module}': no module named '{missing}'"
    if parent_is_module:
        message += f" ('{missing.rpartition('.')[0]}' is a module, not a package)"
    suggestion = did_you_mean(missing, close_module_names(missing, search_path))
    hint = f"did you mean '{suggestion}'? " if suggestion else ""
    if "." in missing:
        hint += "check the spelling of the module path"
    else:
        hint += (
            f"install the package that provides '{missing}' into this Python ({sys.executable}), "
            f"check the spelling, or put {missing}.py next to the config ({spec.directory})"
        )
    yield field_problem(spec, ("model", "source"), message, hint)


def _check_checkpoint(spec: Spec) -> Iterator[Problem]:
    checkpoint = spec.model.checkpoint
    if checkpoint is None or checkpoint.is_file():
        return
    what = "is a directory, not a file" if checkpoint.is_dir() else "does not exist"
    yield field_problem(
        spec,
        ("model", "checkpoint"),
        f"checkpoint {checkpoint} {what}",
        f"give the path of a state_dict file, relative to the config's directory ({spec.directory})",
    )


def _check_validate(spec: Spec) -> Iterator[Problem]:
    """Validation data must exist, a custom metric's module must be findable, and custom gates need
    the metric that computes them; top-1/top-5 gates need a classifier output."""
    validate = spec.validate
    if validate.data is not None and not validate.data.is_file():
        yield field_problem(
            spec,
            ("validate", "data", "path"),
            f"validation data {validate.data} does not exist",
            "check the path; it is relative to the config file",
        )
    if validate.metric is not None:
        module = validate.metric.partition(":")[0]
        if locate_module(module, module_search_path(spec.directory)) is None:
            yield field_problem(
                spec,
                ("validate", "metric"),
                f"cannot find the module '{module}' of validate.metric",
                "put the module beside the config, or install the package that provides it",
            )
    if validate.holdout is not None and (spec.calibration is None or spec.calibration.source == "random"):
        yield field_problem(
            spec,
            ("validate", "data", "holdout"),
            "holdout needs calibration data from an npz, images or a callable",
            "declare `calibration:` with real data, or validate on `data: {path: val.npz}`",
        )
    classifiers = [o.name for o in spec.outputs if o.classifier]
    for precision, tolerance in validate.tolerance.items():
        if tolerance.custom and validate.metric is None:
            yield field_problem(
                spec,
                ("validate", "tolerance", precision, "custom"),
                f"custom gates {sorted(tolerance.custom)} but no validate.metric computes them",
                "add `validate: {metric: module:function}` returning these names, or remove the gates",
            )
        if (tolerance.top1 is not None or tolerance.top5 is not None) and not classifiers:
            yield field_problem(
                spec,
                ("validate", "tolerance", precision),
                "top1/top5 gates need an output declared `classifier: true`",
                "declare it: outputs: {logits: {shape: [batch, 1000], classifier: true}}",
            )


def _check_build(spec: Spec) -> Iterator[Problem]:
    workspace = spec.build.workspace
    if workspace is not None and workspace > 2**63 - 1:
        yield field_problem(
            spec,
            ("build", "workspace"),
            f"workspace of {workspace} bytes is more than TensorRT can address",
            "use a size such as 4GiB",
        )
