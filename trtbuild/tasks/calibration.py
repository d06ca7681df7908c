"""Calibration batches for Q/DQ quantization, from the source the spec declares.

numpy, PIL and the user's calibration module are imported by the functions that need them: this
module is imported at plan time. The run's preflight uses `preprocess_image`, `first_batch` and
`batch_problems` too, so that it checks the data exactly as the task will read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from trtbuild.errors import TaskError
from trtbuild.tasks.importing import import_attribute
from trtbuild.tasks.sampling import random_arrays

# Names of the precision task's file inputs: the images used (source images), and the local code of
# a calibration function (source callable).
IMAGE_PREFIX = "calibration:"
CODE_PREFIX = "calibration-code:"


class CropError(TaskError):
    """An image is smaller than the crop: the preprocessing is wrong, not the image."""


def calibration_arrays(
    calibration: Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]],
    files: Mapping[str, Path],
    search_path: Sequence[str] = (),
) -> dict[str, Any]:
    """Input name -> one numpy array holding every calibration sample, batch first.

    `search_path` is where a calibration function's module is imported from (the node's context).
    """
    source = calibration["source"]
    if source == "npz":
        import numpy as np

        with np.load(files["calibration"]) as archive:
            return {name: archive[name] for name in archive.files}
    if source == "random":
        return _random(calibration, inputs)
    if source == "images":
        return _images(calibration, files)
    if source == "callable":
        return _callable(calibration, search_path)
    raise TaskError(f"unknown calibration source {source!r}")


def split_holdout(arrays: Mapping[str, Any], holdout: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(calibration, validation): the last `holdout` samples of every input validate, the rest
    calibrate, so a cell is never validated on the data it was calibrated on."""
    rows = min(len(array) for array in arrays.values())
    if holdout >= rows:
        raise TaskError(
            f"validate.data.holdout is {holdout} but the calibration data has {rows} samples",
            ["hold out fewer samples, or provide more calibration data"],
        )
    cut = rows - holdout
    return (
        {name: array[:cut] for name, array in arrays.items()},
        {name: array[cut:rows] for name, array in arrays.items()},
    )


def _random(calibration: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`samples` seeded items at the first profile's opt shape, stacked along a dynamic batch axis."""
    return random_arrays(
        inputs,
        _batched_shapes(calibration["shapes"], inputs, calibration["samples"]),
        seed=calibration["seed"],
    )


def _batched_shapes(
    opt: Mapping[str, Sequence[int]], inputs: Sequence[Mapping[str, Any]], samples: int
) -> dict[str, list[int]]:
    shapes = {}
    for tensor in inputs:
        batched = bool(tensor["shape"]) and isinstance(tensor["shape"][0], str)
        shape = list(opt[tensor["name"]])
        shapes[tensor["name"]] = [samples, *shape[1:]] if batched else shape
    return shapes


# -- images -----------------------------------------------------------------------------------


def image_paths(files: Mapping[str, Path]) -> list[Path]:
    """The images in the order the plan chose (sorted by relative path, which the names carry)."""
    return [files[name] for name in sorted(files) if name.startswith(IMAGE_PREFIX)]


def _images(calibration: Mapping[str, Any], files: Mapping[str, Path]) -> dict[str, Any]:
    import numpy as np

    tensor = calibration["input"]
    samples: list[Any] = []
    for path in image_paths(files):
        sample = preprocess_image(path, calibration["preprocess"], tensor)
        if samples and sample.shape != samples[0].shape:
            raise TaskError(
                f"calibration image {path.name} becomes {list(sample.shape)} but the first one "
                f"{list(samples[0].shape)}",
                ["set calibration.preprocess.resize and/or crop so every image ends up the same size"],
            )
        samples.append(sample)
    arrays = {tensor["name"]: np.stack(samples)}
    others = calibration.get("others")
    if others:
        shapes = _batched_shapes(others["shapes"], others["inputs"], len(samples))
        arrays.update(random_arrays(others["inputs"], shapes, seed=others["seed"]))
    return arrays


def image_channels(tensor: Mapping[str, Any], layout: str) -> int:
    """1 (grayscale) or 3 (RGB), from the input's channels axis; 3 when that axis is dynamic."""
    channels = tensor["shape"][1 if layout == "NCHW" else 3]
    return channels if isinstance(channels, int) else 3


def preprocess_image(path: Path, preprocess: Mapping[str, Any], tensor: Mapping[str, Any]) -> Any:
    """One sample (numpy, no batch axis) from the image at `path`, in the input's layout and dtype."""
    import numpy as np
    from PIL import Image

    layout = preprocess["layout"]
    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if image_channels(tensor, layout) == 1 else "RGB")
    except Exception as error:  # PIL raises several kinds for truncated or foreign files
        raise TaskError(
            f"cannot read calibration image {path}: {type(error).__name__}: {error}",
            ["remove the file or replace it with a valid JPEG, PNG or BMP image"],
        ) from error
    image = _resize(image, preprocess["resize"])
    image = _center_crop(image, preprocess["crop"], path)
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    mean = np.asarray(preprocess["mean"], dtype=np.float32)
    std = np.asarray(preprocess["std"], dtype=np.float32)
    pixels = (pixels / np.float32(preprocess["scale"]) - mean) / std  # broadcast over channels (last)
    if layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    return _cast(np.ascontiguousarray(pixels), tensor["dtype"])


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


# -- callable ---------------------------------------------------------------------------------


def _callable(calibration: Mapping[str, Any], search_path: Sequence[str]) -> dict[str, Any]:
    """The function's batches, checked one by one, concatenated, cut at `samples`."""
    import numpy as np

    inputs = calibration["inputs"]
    samples = calibration["samples"]
    collected: dict[str, list[Any]] = {t["name"]: [] for t in inputs}
    count = 0
    for index, batch in enumerate(iter_batches(calibration["function"], inputs, search_path)):
        problems = batch_problems(batch, inputs)
        if problems:
            raise TaskError(f"batch {index} of {calibration['function']}: {problems[0]}", problems[1:])
        for name, array in batch.items():
            collected[name].append(array)
        count += _batch_size(batch)
        if samples is not None and count >= samples:
            break  # the function may yield forever: stop as soon as there is enough
    if count == 0:
        raise TaskError(
            f"{calibration['function']} gave no calibration samples",
            ["return or yield at least one batch {input name: array}"],
        )
    return {name: np.concatenate(arrays, axis=0)[:samples] for name, arrays in collected.items()}


def first_batch(
    function: str, inputs: Sequence[Mapping[str, Any]], search_path: Sequence[str]
) -> dict[str, Any] | None:
    """The function's first batch as numpy arrays (None when it gives none); for the preflight."""
    return next(iter_batches(function, inputs, search_path), None)


def iter_batches(
    function: str, inputs: Sequence[Mapping[str, Any]], search_path: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """Batches of `function()`, as {input name: numpy array}; the user's errors become TaskErrors."""
    names = [t["name"] for t in inputs]
    target = load_function(function, search_path)
    result = _call(function, target)
    if _is_batch(result):
        yield as_arrays(result, names, function)
        return
    try:
        iterator = iter(result)
    except TypeError:
        raise TaskError(
            f"{function}() returned {type(result).__name__}",
            ["return or yield dicts {input name: array}, or arrays when the model has one input"],
        ) from None
    while True:
        batch = _call(function, lambda: next(iterator, _END))
        if batch is _END:
            return
        yield as_arrays(batch, names, function)


_END = object()


def _call(function: str, target: Callable[[], Any]) -> Any:
    try:
        return target()
    except Exception as error:  # anything the user's code raises
        raise TaskError(
            f"calibration function {function} raised {type(error).__name__}: {error}",
            ["run it by hand to debug: python -c 'import ...; print(next(iter(...)))'"],
        ) from error


def load_function(function: str, search_path: Sequence[str]) -> Callable[[], Any]:
    """The callable named by "module:function"."""
    target = import_attribute(function, search_path, "calibration.function")
    if not callable(target):
        raise TaskError(
            f"{function} is a {type(target).__name__}, not a function", ["check calibration.function"]
        )
    return target  # type: ignore[no-any-return]


def _is_batch(value: Any) -> bool:
    # A single batch rather than an iterable of them: a dict, or an array (numpy or torch).
    return isinstance(value, Mapping) or hasattr(value, "shape")


def as_arrays(batch: Any, names: Sequence[str], function: str) -> dict[str, Any]:
    if isinstance(batch, Mapping):
        return {str(name): _to_numpy(value) for name, value in batch.items()}
    if hasattr(batch, "shape") and len(names) == 1:
        return {names[0]: _to_numpy(batch)}
    expected = "a dict {input name: array}" + (" or an array" if len(names) == 1 else "")
    raise TaskError(
        f"{function} gave a {type(batch).__name__} where a batch was expected",
        [f"each batch must be {expected}; the model's inputs are {', '.join(names)}"],
    )


def _to_numpy(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor: no torch import needed to convert it
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _batch_size(batch: Mapping[str, Any]) -> int:
    return int(next(iter(batch.values())).shape[0])


def batch_problems(batch: Mapping[str, Any], inputs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What is wrong with one batch against the inputs: names, ranks, fixed dims, dtypes, batch sizes.

    Axis 0 is not compared with a fixed batch size: batches are concatenated along it, and ModelOpt
    splits the whole into the model's batch size.
    """
    names = [t["name"] for t in inputs]
    problems = [
        f"no array for input '{name}' (the batch has {sorted(batch)})" for name in names if name not in batch
    ]
    extra = sorted(set(batch) - set(names))
    if extra:
        problems.append(f"arrays for unknown inputs {extra} (the inputs are {names})")
    for tensor in inputs:
        array = batch.get(tensor["name"])
        if array is not None:
            problems += _array_problems(array, tensor)
    sizes = {int(a.shape[0]) for a in batch.values() if a.ndim > 0}
    if len(sizes) > 1:
        problems.append(f"the arrays have different batch sizes (axis 0): {sorted(sizes)}")
    return problems


def _array_problems(array: Any, tensor: Mapping[str, Any]) -> list[str]:
    name, shape = tensor["name"], list(tensor["shape"])
    if array.ndim != len(shape) or array.ndim == 0:
        return [
            f"array '{name}' of shape {list(array.shape)} has rank {array.ndim}, input '{name}' is {shape}"
        ]
    problems = []
    fixed = [
        f"axis {axis}: {size} != {dim}"
        for axis, (size, dim) in enumerate(zip(array.shape, shape, strict=True))
        if axis > 0 and isinstance(dim, int) and size != dim
    ]
    if fixed:
        problems.append(
            f"array '{name}' of shape {list(array.shape)} does not fit {shape}: " + "; ".join(fixed)
        )
    if str(array.dtype) != tensor["dtype"]:
        problems.append(f"array '{name}' is {array.dtype}, input '{name}' is {tensor['dtype']}")
    return problems
