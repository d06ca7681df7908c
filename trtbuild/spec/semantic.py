"""Checks on a normalised Spec that JSON Schema cannot express: profiles against inputs, symbolic
dims, the model source and the checkpoint. Each finding is a Problem pointing at the line to change.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Generator, Iterator

from trtbuild.errors import Problem
from trtbuild.spec.model import (
    QUANTIZED_PRECISIONS,
    CalibrationSpec,
    ConcreteShape,
    FieldPath,
    Preprocess,
    ProfileSpec,
    Shape,
    ShapeRange,
    Spec,
    TensorSpec,
    format_field_path,
)
from trtbuild.spec.source import close_module_names, locate_module, missing_part, module_search_path
from trtbuild.spec.validate import did_you_mean, sort_problems
from trtbuild.spec.yamlmarks import KEY_MARK, key_location

KINDS = ("min", "opt", "max")
# Placeholder min/opt/max of a symbolic dim in suggested snippets, when no other input fixes them.
_SNIPPET_RANGE = (1, 8, 32)


def check_spec(spec: Spec, search_path: list[str]) -> list[Problem]:
    """Every semantic problem of `spec`, in file order; model modules are looked for on `search_path`."""
    problems = [
        *_check_profiles(spec),
        *_check_outputs(spec),
        *_check_ranges(spec),
        *_check_source(spec, search_path),
        *_check_checkpoint(spec),
        *_check_calibration(spec),
        *_check_validate(spec),
        *_check_build(spec),
    ]
    return sort_problems(problems)


def _problem(spec: Spec, path: FieldPath, message: str, hint: str, *, at_key: bool = False) -> Problem:
    location = key_location(spec.marks, path) if at_key else None
    return Problem(message, location or spec.location(path), format_field_path(path), hint)


def _shape_text(shape: Shape | ConcreteShape | list[int]) -> str:
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
    hint = "add a profile (and adjust the sizes of the dynamic dims):\n" + "\n".join(lines)
    return _problem(
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
        parts.append(f"{kind}: {_shape_text(dims)}")
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
            yield _problem(
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
    return _problem(
        spec,
        (*path, wrong[0]),
        f"input '{tensor.name}' has {rank} dims ({_shape_text(tensor.shape)}) but {given}",
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
        return _problem(
            spec,
            (*path, kind, axis),
            f"axis {axis} of input '{tensor.name}' is fixed at {dim}, but min/opt/max give {sizes}",
            f"use {dim} at axis {axis} of min, opt and max, or make the axis dynamic by giving it a name "
            f"in inputs.{tensor.name}.shape",
        )
    if low <= opt <= high:
        return None
    kind = "min" if low > opt or low > high else "opt"
    return _problem(
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
        yield _problem(
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
            yield _problem(
                spec,
                ("profiles", profile.name, name, "min"),
                f"dim '{symbol}' is {_sizes_text(sizes)} (min/opt/max) at axis {axis} of input '{name}' "
                f"but {_sizes_text(first_sizes)} at axis {first_axis} of input '{first_name}'",
                f"one dim name is one size at run time: give '{symbol}' the same min, opt and max everywhere "
                f"in profile '{profile.name}', or use different names for independent dims",
            )


# -- outputs, ranges --------------------------------------------------------------------------


def _check_outputs(spec: Spec) -> Iterator[Problem]:
    input_names = {tensor.name for tensor in spec.inputs}
    symbols = sorted({d for tensor in spec.inputs for d in tensor.dynamic_dims.values()})
    for index, output in enumerate(spec.outputs):
        in_mapping = ("outputs", output.name) in spec.marks
        path: FieldPath = ("outputs", output.name) if in_mapping else ("outputs", index)
        if output.name in input_names:
            yield _problem(
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
                yield _problem(
                    spec, (*path, "shape", axis), f"dim '{dim}' does not appear in any input", hint
                )


def _check_ranges(spec: Spec) -> Iterator[Problem]:
    for tensor in spec.inputs:
        low, high = tensor.value_range
        if not low < high:
            yield _problem(
                spec,
                ("inputs", tensor.name, "range"),
                f"range [{low:g}, {high:g}] is empty: low must be below high",
                "write the range as [low, high], e.g. [0, 1]",
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
    yield _problem(spec, ("model", "source"), message, hint)


def _check_checkpoint(spec: Spec) -> Iterator[Problem]:
    checkpoint = spec.model.checkpoint
    if checkpoint is None or checkpoint.is_file():
        return
    what = "is a directory, not a file" if checkpoint.is_dir() else "does not exist"
    yield _problem(
        spec,
        ("model", "checkpoint"),
        f"checkpoint {checkpoint} {what}",
        f"give the path of a state_dict file, relative to the config's directory ({spec.directory})",
    )


def _check_calibration(spec: Spec) -> Iterator[Problem]:
    """Quantized cells need calibration data, and its source needs what it reads: the npz file, the
    folder of images and the input they feed, the callable's module.

    The data itself (an npz's arrays, the first image, the callable's first batch) is checked before
    any task runs too, but later, in the run's preflight: that needs numpy, PIL or the user's code,
    which planning a cached run must not import.
    """
    quantized = [cell.name for cell in spec.cells if cell.precision in QUANTIZED_PRECISIONS]
    calibration = spec.calibration
    if quantized and calibration is None:
        yield _problem(
            spec,
            ("precision",),
            f"cell(s) {', '.join(quantized)} need calibration data, and the config has no `calibration`",
            "add `calibration: {source: npz, path: calib.npz}` (arrays by input name), "
            "`{source: images, path: calib/}`, `{source: callable, function: module:function}`, or "
            "`calibration: {source: random, samples: 16}` to try things out (not fit for production)",
        )
    if calibration is None or not quantized:
        return  # data no cell of this view uses is not checked (nor read)
    checks = {"npz": _check_npz, "images": _check_images, "callable": _check_callable}
    problems = [*_unused_calibration_fields(spec, calibration.source)]
    if calibration.source in checks:
        problems += checks[calibration.source](spec, calibration)
    for problem in problems:
        # Say which cells the data is for: the user may be wondering why int8 is involved at all.
        yield (
            dataclasses.replace(problem, message=f"{problem.message} (calibration of {', '.join(quantized)})")
            if quantized
            else problem
        )


# Fields each calibration source reads; any other is a mistake (a `preprocess` that would be ignored).
_CALIBRATION_FIELDS = {
    "random": {"samples", "seed"},
    "npz": {"path"},
    "images": {"path", "input", "samples", "seed", "preprocess"},
    "callable": {"function", "samples"},
}


def _unused_calibration_fields(spec: Spec, source: str) -> Iterator[Problem]:
    used = _CALIBRATION_FIELDS[source] | {"source"}
    for path in spec.marks:
        if len(path) == 2 and path[0] == "calibration" and path[1] not in (*used, KEY_MARK):
            yield _problem(
                spec,
                path,
                f"`{path[1]}` is not used by calibration source {source}",
                f"source {source} reads {', '.join(sorted(used - {'source'}))}: remove `{path[1]}` "
                "or change the source",
                at_key=True,
            )


def _check_npz(spec: Spec, calibration: CalibrationSpec) -> Iterator[Problem]:
    if calibration.path is None:
        yield _problem(
            spec, ("calibration",), "source npz needs `path`", "add `path: calib.npz`, relative to the config"
        )
    elif not calibration.path.is_file():
        yield _problem(
            spec,
            ("calibration", "path"),
            f"calibration file {calibration.path} does not exist",
            "check the path; it is relative to the config file",
        )


def _check_images(spec: Spec, calibration: CalibrationSpec) -> Iterator[Problem]:
    suffixes = ", ".join(f"*{suffix}" for suffix in calibration.IMAGE_SUFFIXES)
    if calibration.path is None:
        yield _problem(
            spec,
            ("calibration",),
            "source images needs `path`",
            "add `path: calib/`, a folder of images relative to the config",
        )
    elif not calibration.path.is_dir():
        what = "is a file, not a folder" if calibration.path.exists() else "does not exist"
        yield _problem(
            spec,
            ("calibration", "path"),
            f"calibration folder {calibration.path} {what}",
            f"give a folder of images ({suffixes}); it is relative to the config file",
        )
    elif not calibration.image_files():
        yield _problem(
            spec,
            ("calibration", "path"),
            f"calibration folder {calibration.path} has no images",
            f"put calibration images ({suffixes}, searched recursively) in it, "
            "ideally a few hundred representative of production inputs",
        )
    tensor = yield from _images_input(spec, calibration)
    if tensor is not None:
        yield from _check_image_input(spec, calibration, tensor)


def _images_input(spec: Spec, calibration: CalibrationSpec) -> Generator[Problem, None, TensorSpec | None]:
    """The input the images feed (the only one unless `input` names one), or None after a problem."""
    inputs = {tensor.name: tensor for tensor in spec.inputs}
    if calibration.input is None:
        if len(inputs) == 1:
            return spec.inputs[0]
        yield _problem(
            spec,
            ("calibration",),
            f"the model has {len(inputs)} inputs ({', '.join(inputs)}): which one do the images feed?",
            f"add `input: {spec.inputs[0].name}` (say) under calibration; the other inputs get seeded "
            "random data, or use source callable to feed them all",
        )
        return None
    if calibration.input in inputs:
        return inputs[calibration.input]
    suggestion = did_you_mean(calibration.input, inputs)
    yield _problem(
        spec,
        ("calibration", "input"),
        f"calibration.input names unknown input '{calibration.input}'",
        (f"did you mean '{suggestion}'? " if suggestion else "") + f"inputs: {', '.join(inputs)}",
    )
    return None


# Input dtypes an image can be cast to: floats after normalisation, or raw 8-bit pixels.
_IMAGE_DTYPES = ("float32", "float16", "uint8")


def _check_image_input(spec: Spec, calibration: CalibrationSpec, tensor: TensorSpec) -> Iterator[Problem]:
    where = f"input '{tensor.name}' ({_shape_text(tensor.shape)}, {tensor.dtype})"
    if len(tensor.shape) != 4:
        yield _problem(
            spec,
            ("calibration", "input") if calibration.input else ("calibration",),
            f"images feed a 4-D input (a batch of images), but {where} has {len(tensor.shape)} dims",
            "use source callable or npz to feed this input",
        )
        return
    if tensor.dtype not in _IMAGE_DTYPES:
        yield _problem(
            spec,
            ("calibration", "input") if calibration.input else ("calibration",),
            f"images cannot feed {where}: images become {', '.join(_IMAGE_DTYPES)} data",
            "use source callable or npz to feed this input",
        )
    yield from _check_preprocess(spec, calibration.preprocess, tensor)


def _check_preprocess(spec: Spec, preprocess: Preprocess, tensor: TensorSpec) -> Iterator[Problem]:
    path: FieldPath = ("calibration", "preprocess")
    channels_axis, height_axis = (1, 2) if preprocess.layout == "NCHW" else (3, 1)
    channels = tensor.shape[channels_axis]
    if isinstance(channels, int) and channels not in (1, 3):
        yield _problem(
            spec,
            (*path, "layout"),
            f"with layout {preprocess.layout}, axis {channels_axis} of input '{tensor.name}' "
            f"({_shape_text(tensor.shape)}) is the channels axis, which must be 1 (grayscale) or 3 (RGB), "
            f"not {channels}",
            "set `layout: NHWC` or `layout: NCHW` to match the input, or use source callable",
        )
        return
    for name in ("mean", "std"):
        values: tuple[float, ...] = getattr(preprocess, name)
        if len(values) != 1 and isinstance(channels, int) and len(values) != channels:
            yield _problem(
                spec,
                (*path, name),
                f"{name} has {len(values)} values but input '{tensor.name}' has {channels} channel(s)",
                f"give one {name}, or one per channel",
            )
    if 0.0 in preprocess.std:
        yield _problem(spec, (*path, "std"), "std holds a 0, which would divide by zero", "use std > 0")
    yield from _check_sizes(spec, preprocess, tensor, height_axis)


def _check_sizes(
    spec: Spec, preprocess: Preprocess, tensor: TensorSpec, height_axis: int
) -> Iterator[Problem]:
    path: FieldPath = ("calibration", "preprocess")
    resize, crop = preprocess.resize, preprocess.crop
    if crop is not None and resize is not None:
        # Resizing the shorter side to N leaves both sides >= N; an exact resize leaves (H, W).
        room = (resize, resize) if isinstance(resize, int) else resize
        if crop[0] > room[0] or crop[1] > room[1]:
            yield _problem(
                spec,
                (*path, "crop"),
                f"crop {_shape_text(list(crop))} does not fit inside the resized image "
                f"(resize {resize if isinstance(resize, int) else _shape_text(list(resize))})",
                "crop to at most the resize size, e.g. `resize: 256, crop: 224`",
            )
            return
    # The images' final size is known here when cropped or resized exactly; else preflight sees it.
    final = crop if crop is not None else resize if isinstance(resize, tuple) else None
    if final is None:
        return
    wanted = (tensor.shape[height_axis], tensor.shape[height_axis + 1])
    if any(isinstance(want, int) and got != want for got, want in zip(final, wanted, strict=True)):
        field_name = "crop" if crop is not None else "resize"
        yield _problem(
            spec,
            (*path, field_name),
            f"{field_name} makes {final[0]}x{final[1]} images (H x W), but input '{tensor.name}' "
            f"is {_shape_text(tensor.shape)} with layout {preprocess.layout}",
            f"{field_name} to the input's height and width",
        )


def _check_callable(spec: Spec, calibration: CalibrationSpec) -> Iterator[Problem]:
    if calibration.function is None:
        yield _problem(
            spec,
            ("calibration",),
            "source callable needs `function`",
            "add `function: calib_data:batches`, a function in calib_data.py next to the config that "
            "returns or yields {input name: array} batches",
        )
        return
    module = calibration.function.partition(":")[0]
    search_path = _module_search_path(spec)
    if locate_module(module, search_path) is not None:
        return
    missing, _ = missing_part(module, search_path)
    suggestion = did_you_mean(missing, close_module_names(missing, search_path))
    yield _problem(
        spec,
        ("calibration", "function"),
        f"cannot find module '{missing}' of calibration function {calibration.function}",
        (f"did you mean '{suggestion}'? " if suggestion else "")
        + f"put {missing.replace('.', '/')}.py next to the config ({spec.directory}), or install the "
        "package that provides it",
    )


def _module_search_path(spec: Spec) -> list[str]:
    # Same lookup as model.source.
    return module_search_path(spec.directory)


def _check_validate(spec: Spec) -> Iterator[Problem]:
    """Validation data must exist, a custom metric's module must be findable, and custom gates need
    the metric that computes them; top-1/top-5 gates need a classifier output."""
    validate = spec.validate
    if validate.data is not None and not validate.data.is_file():
        yield _problem(
            spec,
            ("validate", "data", "path"),
            f"validation data {validate.data} does not exist",
            "check the path; it is relative to the config file",
        )
    if validate.metric is not None:
        module = validate.metric.partition(":")[0]
        if locate_module(module, module_search_path(spec.directory)) is None:
            yield _problem(
                spec,
                ("validate", "metric"),
                f"cannot find the module '{module}' of validate.metric",
                "put the module beside the config, or install the package that provides it",
            )
    if validate.holdout is not None and (spec.calibration is None or spec.calibration.source == "random"):
        yield _problem(
            spec,
            ("validate", "data", "holdout"),
            "holdout needs calibration data from an npz, images or a callable",
            "declare `calibration:` with real data, or validate on `data: {path: val.npz}`",
        )
    classifiers = [o.name for o in spec.outputs if o.classifier]
    for precision, tolerance in validate.tolerance.items():
        if tolerance.custom and validate.metric is None:
            yield _problem(
                spec,
                ("validate", "tolerance", precision, "custom"),
                f"custom gates {sorted(tolerance.custom)} but no validate.metric computes them",
                "add `validate: {metric: module:function}` returning these names, or remove the gates",
            )
        if (tolerance.top1 is not None or tolerance.top5 is not None) and not classifiers:
            yield _problem(
                spec,
                ("validate", "tolerance", precision),
                "top1/top5 gates need an output declared `classifier: true`",
                "declare it: outputs: {logits: {shape: [batch, 1000], classifier: true}}",
            )


def _check_build(spec: Spec) -> Iterator[Problem]:
    workspace = spec.build.workspace
    if workspace is not None and workspace > 2**63 - 1:
        yield _problem(
            spec,
            ("build", "workspace"),
            f"workspace of {workspace} bytes is more than TensorRT can address",
            "use a size such as 4GiB",
        )
