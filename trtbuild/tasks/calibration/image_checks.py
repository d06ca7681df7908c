"""Checks of a config's `calibration` block for source images, made when it is loaded: the folder,
the input the images feed, and preprocessing that fits that input. No image is read here (preflight
decodes the first one)."""

from __future__ import annotations

from collections.abc import Generator, Iterator

from trtbuild.errors import Problem
from trtbuild.spec.model import CalibrationSpec, FieldPath, Preprocess, Spec, TensorSpec
from trtbuild.spec.semantic import field_problem, shape_text
from trtbuild.spec.validate import did_you_mean


def image_source_problems(spec: Spec, calibration: CalibrationSpec) -> Iterator[Problem]:
    suffixes = ", ".join(f"*{suffix}" for suffix in calibration.IMAGE_SUFFIXES)
    if calibration.path is None:
        yield field_problem(
            spec,
            ("calibration",),
            "source images needs `path`",
            "add `path: calib/`, a folder of images relative to the config",
        )
    elif not calibration.path.is_dir():
        what = "is a file, not a folder" if calibration.path.exists() else "does not exist"
        yield field_problem(
            spec,
            ("calibration", "path"),
            f"calibration folder {calibration.path} {what}",
            f"give a folder of images ({suffixes}); it is relative to the config file",
        )
    elif not calibration.image_files():
        yield field_problem(
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
        yield field_problem(
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
    yield field_problem(
        spec,
        ("calibration", "input"),
        f"calibration.input names unknown input '{calibration.input}'",
        (f"did you mean '{suggestion}'? " if suggestion else "") + f"inputs: {', '.join(inputs)}",
    )
    return None


# Input dtypes an image can be cast to: floats after normalisation, or raw 8-bit pixels.
_IMAGE_DTYPES = ("float32", "float16", "uint8")


def _check_image_input(spec: Spec, calibration: CalibrationSpec, tensor: TensorSpec) -> Iterator[Problem]:
    where = f"input '{tensor.name}' ({shape_text(tensor.shape)}, {tensor.dtype})"
    if len(tensor.shape) != 4:
        yield field_problem(
            spec,
            ("calibration", "input") if calibration.input else ("calibration",),
            f"images feed a 4-D input (a batch of images), but {where} has {len(tensor.shape)} dims",
            "use source callable or npz to feed this input",
        )
        return
    if tensor.dtype not in _IMAGE_DTYPES:
        yield field_problem(
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
        yield field_problem(
            spec,
            (*path, "layout"),
            f"with layout {preprocess.layout}, axis {channels_axis} of input '{tensor.name}' "
            f"({shape_text(tensor.shape)}) is the channels axis, which must be 1 (grayscale) or 3 (RGB), "
            f"not {channels}",
            "set `layout: NHWC` or `layout: NCHW` to match the input, or use source callable",
        )
        return
    for name in ("mean", "std"):
        values: tuple[float, ...] = getattr(preprocess, name)
        if len(values) != 1 and isinstance(channels, int) and len(values) != channels:
            yield field_problem(
                spec,
                (*path, name),
                f"{name} has {len(values)} values but input '{tensor.name}' has {channels} channel(s)",
                f"give one {name}, or one per channel",
            )
    if 0.0 in preprocess.std:
        yield field_problem(spec, (*path, "std"), "std holds a 0, which would divide by zero", "use std > 0")
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
            yield field_problem(
                spec,
                (*path, "crop"),
                f"crop {shape_text(list(crop))} does not fit inside the resized image "
                f"(resize {resize if isinstance(resize, int) else shape_text(list(resize))})",
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
        yield field_problem(
            spec,
            (*path, field_name),
            f"{field_name} makes {final[0]}x{final[1]} images (H x W), but input '{tensor.name}' "
            f"is {shape_text(tensor.shape)} with layout {preprocess.layout}",
            f"{field_name} to the input's height and width",
        )
