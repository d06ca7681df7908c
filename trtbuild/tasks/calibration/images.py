"""calibration source images: a folder of images, preprocessed into one input; other inputs random."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import CalibrationSpec, Preprocess, Spec, TensorSpec
from trtbuild.tasks.calibration.base import (
    Arrays,
    CalibrationSource,
    Files,
    InputSignature,
    SourceProblem,
    batched_shapes,
)
from trtbuild.tasks.calibration.image_checks import image_source_problems
from trtbuild.tasks.params import opt_shapes
from trtbuild.tasks.values import generated_arrays, npz_files

# The precision task's file inputs for the images used, named by their path inside the folder.
IMAGE_PREFIX = "calibration:"


class CropError(TaskError):
    """An image is smaller than the crop: the preprocessing is wrong, not the image."""


@dataclass(frozen=True, kw_only=True)
class RandomInputs:
    """Inputs the images do not feed: seeded data made by their `values`, as source random makes it."""

    inputs: tuple[TensorSpec, ...]
    shapes: dict[str, list[int]]
    seed: int


@dataclass(frozen=True, kw_only=True)
class ImagesCalibration(CalibrationSource):
    """Every image used is a file input (its content is keyed); images beyond `samples` are not,
    so editing one of them reruns nothing. The preprocessing and the fed input are params."""

    source: str = "images"
    input: InputSignature
    samples: int | None
    preprocess: Preprocess  # with `scale` resolved: 255 for float inputs, 1 for integer ones
    others: RandomInputs | None = None

    def production_ready(self) -> bool:
        return self.others is None  # random data for the other inputs is not fit to ship

    fields: ClassVar[frozenset[str]] = frozenset({"path", "input", "samples", "seed", "preprocess"})

    @classmethod
    def spec_problems(cls, spec: Spec, calibration: CalibrationSpec) -> Iterator[Problem]:
        return image_source_problems(spec, calibration)

    @classmethod
    def derive(cls, spec: Spec) -> tuple[ImagesCalibration, Files]:
        calibration = spec.calibration
        assert calibration is not None and calibration.path is not None  # the spec checks made sure
        root = calibration.path
        images = calibration.image_files()[: calibration.samples]
        files = {f"{IMAGE_PREFIX}{path.relative_to(root).as_posix()}": path for path in images}
        name = calibration.input or spec.inputs[0].name
        tensor = next(t for t in spec.inputs if t.name == name)
        preprocess = calibration.preprocess
        if preprocess.scale is None:
            # Pixels are 0..255: float inputs want [0, 1] before mean/std, integer inputs raw values.
            scale = 1.0 if tensor.dtype.startswith(("int", "uint")) else 255.0
            preprocess = dataclasses.replace(preprocess, scale=scale)
        rest = tuple(t for t in spec.inputs if t.name != name)
        others = (
            RandomInputs(inputs=rest, shapes=opt_shapes(rest, spec.profiles), seed=calibration.seed)
            if rest
            else None
        )
        if others is not None:
            files.update(npz_files(spec, others.inputs))
        return cls(
            input=InputSignature.of(tensor), samples=calibration.samples, preprocess=preprocess, others=others
        ), files

    def load(self, files: Mapping[str, Path], search_path: Sequence[str]) -> Arrays:
        import numpy as np

        samples: list[Any] = []
        for path in image_paths(files):
            sample = preprocess_image(path, self.preprocess, self.input)
            if samples and sample.shape != samples[0].shape:
                raise TaskError(
                    f"calibration image {path.name} becomes {list(sample.shape)} but the first one "
                    f"{list(samples[0].shape)}",
                    ["set calibration.preprocess.resize and/or crop so every image ends up the same size"],
                )
            samples.append(sample)
        arrays = {self.input.name: np.stack(samples)}
        if self.others is not None:
            shapes = batched_shapes(self.others.shapes, self.others.inputs, len(samples))
            arrays.update(generated_arrays(self.others.inputs, shapes, self.others.seed, files))
        return arrays

    def preflight(
        self, spec: Spec, files: Mapping[str, Path], search_path: Sequence[str]
    ) -> list[SourceProblem]:
        """Decode and preprocess the first image only (cheap), and compare it with the input's shape."""
        paths = image_paths(files)
        if not paths:  # the folder was emptied after the config was loaded
            return [("path", "the calibration folder has no images", "put calibration images in it")]
        try:
            sample = preprocess_image(paths[0], self.preprocess, self.input)
        except CropError as error:
            return [("preprocess", str(error), " ".join(error.details))]
        except TaskError as error:  # the image cannot be decoded
            return [("path", str(error), " ".join(error.details))]
        return _shape_problems(paths[0], list(sample.shape), self.input)


def _shape_problems(first: Path, shape: list[int], tensor: InputSignature) -> list[SourceProblem]:
    wrong = [
        f"axis {axis + 1}: {size} != {dim}"
        for axis, (size, dim) in enumerate(zip(shape, tensor.shape[1:], strict=True))
        if isinstance(dim, int) and size != dim
    ]
    if not wrong:
        return []
    return [
        (
            "preprocess",
            f"image {first.name} becomes a sample of shape {shape}, which does not fit "
            f"input '{tensor.name}' {list(tensor.shape)}: " + "; ".join(wrong),
            "set calibration.preprocess resize/crop to the input's height and width, "
            "and layout to its axis order",
        )
    ]


def image_paths(files: Mapping[str, Path]) -> list[Path]:
    """The images in the order the plan chose (sorted by relative path, which the names carry)."""
    return [files[name] for name in sorted(files) if name.startswith(IMAGE_PREFIX)]


def image_channels(tensor: InputSignature, layout: str) -> int:
    """1 (grayscale) or 3 (RGB), from the input's channels axis; 3 when that axis is dynamic."""
    channels = tensor.shape[1 if layout == "NCHW" else 3]
    return channels if isinstance(channels, int) else 3


def preprocess_image(path: Path, preprocess: Preprocess, tensor: InputSignature) -> Any:
    """One sample (numpy, no batch axis) from the image at `path`, in the input's layout and dtype."""
    import numpy as np
    from PIL import Image

    layout = preprocess.layout
    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if image_channels(tensor, layout) == 1 else "RGB")
    except Exception as error:  # PIL raises several kinds for truncated or foreign files
        raise TaskError(
            f"cannot read calibration image {path}: {type(error).__name__}: {error}",
            ["remove the file or replace it with a valid JPEG, PNG or BMP image"],
        ) from error
    image = _resize(image, preprocess.resize)
    image = _center_crop(image, preprocess.crop, path)
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    pixels = (pixels / np.float32(preprocess.scale) - mean) / std  # broadcast over channels (last)
    if layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return _cast(np.ascontiguousarray(pixels), tensor.dtype)


def _resize(image: Any, resize: int | Sequence[int] | None) -> Any:
    from PIL import Image

    if resize is None:
        return image
    width, height = image.size
    if isinstance(resize, int):
        # The shorter side becomes `resize`, the longer one keeps the aspect (as torchvision's Resize).
        if width <= height:
            size = (resize, int(resize * height / width))
        else:
            size = (int(resize * width / height), resize)
    else:
        size = (resize[1], resize[0])  # PIL sizes are (width, height)
    return image.resize(size, Image.Resampling.BILINEAR)


def _center_crop(image: Any, crop: Sequence[int] | None, path: Path) -> Any:
    if crop is None:
        return image
    height, width = crop
    image_width, image_height = image.size
    if height > image_height or width > image_width:
        raise CropError(
            f"calibration image {path.name} is {image_height}x{image_width} (H x W) after resizing, "
            f"smaller than the crop {height}x{width}",
            ["resize to at least the crop size (calibration.preprocess.resize), or crop less"],
        )
    # Rounded like torchvision's CenterCrop, so the same image gives the same pixels.
    top = round((image_height - height) / 2.0)
    left = round((image_width - width) / 2.0)
    return image.crop((left, top, left + width, top + height))


def _cast(pixels: Any, dtype: str) -> Any:
    import numpy as np

    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return np.clip(np.rint(pixels), info.min, info.max).astype(dtype)
    return pixels.astype(dtype)
