"""The normalised spec: what the loader produces and the resolver consumes.

Everything is immutable and fully defaulted, so the resolver never looks at raw YAML. Field marks
(file:line:col of each YAML node) travel along in `Spec.marks` so that checks made after loading —
an unimportable model source, say — can still point at the line to fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.errors import Location

# A dim is a fixed size or the name of a symbolic (dynamic) dim, e.g. "batch".
Dim = int | str
Shape = tuple[Dim, ...]
ConcreteShape = tuple[int, ...]

DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "fp8")
# Precisions made by ModelOpt AutoCast, and by Q/DQ quantization (which needs calibration data).
AUTOCAST_PRECISIONS = ("fp16", "bf16")
QUANTIZED_PRECISIONS = ("int8", "fp8")
EXPORTERS = ("torchscript", "dynamo")
# TensorRT-RTX ahead-of-time targets (trt.ComputeCapability members).
COMPUTE_CAPABILITIES = ("SM75", "SM80", "SM86", "SM89", "SM120", "SM121")

# A JSON-pointer-like path into the YAML document: ("profiles", "default", "input", "min").
FieldPath = tuple[str | int, ...]


def format_field_path(path: FieldPath) -> str:
    """`("profiles", "default", "input", "min", 0)` -> `profiles.default.input.min[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True)
class ModelSpec:
    name: str
    module: str  # "torchvision.models"
    attr: str  # "resnet50": a factory function or an nn.Module class
    kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None  # a state_dict file, hashed into every key that uses the model

    @property
    def source(self) -> str:
        return f"{self.module}:{self.attr}"


Scalar = bool | int | float


@dataclass(frozen=True)
class Uniform:
    """Real numbers drawn uniformly from [low, high) (`range: [low, high]` is short for it)."""

    low: float = 0.0
    high: float = 1.0
    kind: str = "uniform"


@dataclass(frozen=True)
class Integers:
    """Whole numbers drawn uniformly from [low, high): token ids, class indices."""

    low: int = 0
    high: int = 10
    kind: str = "integers"


@dataclass(frozen=True)
class Mask:
    """Per row (along the last axis), ones for a prefix and zeros after it, as padding leaves an
    attention mask. The prefix length is drawn per row from `valid` (shortest, longest), at most
    the row's length; None: from 1 to the whole row. Never an all-zero row."""

    valid: tuple[int, int] | None = None
    kind: str = "mask"


@dataclass(frozen=True)
class Choice:
    """Each element drawn uniformly from the listed values."""

    of: tuple[Scalar, ...] = (False, True)
    kind: str = "choice"


@dataclass(frozen=True)
class Constant:
    """Every element the same value."""

    value: Scalar = 0
    kind: str = "constant"


@dataclass(frozen=True)
class NpzValues:
    """The array `key` of an .npz file: each sample takes its leading part along every dynamic axis
    (an axis of size 1 is repeated instead)."""

    # As the config writes it, relative to the config's folder: keys stay the same in any checkout
    # (the tasks key the file's content as a file input).
    path: str
    key: str
    kind: str = "npz"

    def resolve(self, directory: Path) -> Path:
        return Path(os.path.normpath(directory / Path(self.path).expanduser()))


# How the values of a generated input (validation, random calibration, export's example) are made.
Values = Uniform | Integers | Mask | Choice | Constant | NpzValues


def is_integral(dtype: str) -> bool:
    """An integer dtype (bool is not one: it takes true and false)."""
    return dtype.startswith(("int", "uint"))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Shape
    dtype: str = "float32"
    values: Values = field(default_factory=Uniform)

    @property
    def dynamic_dims(self) -> dict[int, str]:
        """Axis index -> symbolic dim name, for every dynamic axis."""
        return {axis: dim for axis, dim in enumerate(self.shape) if isinstance(dim, str)}


@dataclass(frozen=True)
class OutputSpec:
    name: str
    # Optional: when given, its symbolic dims mark the output's dynamic axes in the export.
    shape: Shape | None = None
    classifier: bool = False  # class scores on the last axis: top-1 / top-5 agreement is reported


@dataclass(frozen=True)
class ExportSpec:
    opset: int = 17
    exporter: str = "torchscript"


@dataclass(frozen=True)
class ShapeRange:
    min: ConcreteShape
    opt: ConcreteShape
    max: ConcreteShape


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    shapes: dict[str, ShapeRange]  # input name -> min/opt/max


@dataclass(frozen=True)
class BuildSpec:
    backend: str = "auto"
    workspace: int | None = None  # bytes; None = TensorRT's default (the device's memory)
    optimization_level: int | None = None  # 0..5; None = TensorRT's default (3)
    targets: tuple[str, ...] = ()  # TensorRT-RTX compute capabilities; () = TensorRT-RTX's default set


@dataclass(frozen=True)
class Tolerance:
    """Gates on one output: |a - b| <= atol + rtol * |b| everywhere, cos >= cosine, top-1 / top-5
    agreement >= top1 / top5 (classifier outputs), custom metrics within their (min, max)."""

    atol: float | None = None
    rtol: float | None = None
    cosine: float | None = None
    top1: float | None = None
    top5: float | None = None
    custom: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


# Defaults per precision: fp32 must match PyTorch closely; lower precisions are gated on the
# direction of the outputs (cosine), which stays meaningful whatever the outputs' scale.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-3, cosine=0.9999),
    "fp16": Tolerance(cosine=0.999),
    "bf16": Tolerance(cosine=0.99),
    "int8": Tolerance(cosine=0.98),
    "fp8": Tolerance(cosine=0.98),
}


@dataclass(frozen=True)
class ValidateSpec:
    samples: int = 4
    seed: int = 0
    tolerance: dict[str, Tolerance] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    metric: str | None = None  # "module:function" returning {name: number} per output
    data: Path | None = None  # an .npz of validation inputs, absolute; None = seeded random inputs
    data_batch: int = 1  # rows of `data` per compared sample
    holdout: int | None = None  # validate on the last N calibration samples (calibrate on the rest)
    # Precision -> the least share of a cell's nodes and weights that must be in its precision
    # (precision.json's shares); a precision not given is not gated.
    min_low_precision: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CodeSpec:
    """What of the user's Python is hashed into keys (see `tasks/code.py`)."""

    # Modules (and their submodules) the walk through the model's imports does not follow, nor hash:
    # someone else's code on the path without package metadata.
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class AutocastSpec:
    keep_io_types: bool = True
    exclude_nodes: tuple[str, ...] = ()
    exclude_op_types: tuple[str, ...] = ()
    # AutoCast's thresholds, with its defaults: a node whose input or output exceeds data_max in
    # magnitude on its reference run, or whose initializer exceeds init_max (the largest finite fp16),
    # or that reduces over more than max_depth_of_reduction elements (None: no limit) stays in fp32.
    data_max: float = 512.0
    init_max: float = 65504.0
    max_depth_of_reduction: int | None = None


@dataclass(frozen=True)
class Preprocess:
    """How source `images` turns an image into one sample, applied in the order of the fields."""

    resize: int | tuple[int, int] | None = None  # N: shorter side to N, keeping the aspect; (H, W): exactly
    crop: tuple[int, int] | None = None  # center crop (H, W); YAML's `crop: N` is (N, N)
    scale: float | None = None  # pixel / scale; None: 255 for float inputs, 1 for integer ones
    mean: tuple[float, ...] = (0.0,)  # one value, or one per channel
    std: tuple[float, ...] = (1.0,)
    layout: str = "NCHW"  # NCHW | NHWC


@dataclass(frozen=True)
class CalibrationSpec:
    source: str = "random"  # random | npz | images | callable
    path: Path | None = None  # the .npz file (npz) or the folder of images (images), absolute
    # random: how many samples (16 unless given). images, callable: at most this many; None = all.
    samples: int | None = 16
    seed: int = 0  # random data: source random, and the inputs source images does not feed
    input: str | None = None  # images: the input they feed; None = the model's only input
    function: str | None = None  # callable: "module.path:function"
    preprocess: Preprocess = field(default_factory=Preprocess)  # images

    IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

    def image_files(self) -> list[Path]:
        """Source images: the image files under `path`, recursively, sorted by their relative path so
        that the order (and so which `samples` are used) does not depend on the file system."""
        if self.path is None or not self.path.is_dir():
            return []
        root = self.path
        found = [p for p in root.rglob("*") if p.suffix.lower() in self.IMAGE_SUFFIXES and p.is_file()]
        return sorted(found, key=lambda p: p.relative_to(root).as_posix())


@dataclass(frozen=True)
class Cell:
    """One point of the build matrix: its name, precision, axis values and its own view of the spec."""

    name: str
    precision: str
    values: dict[str, Any] = field(default_factory=dict, compare=False)
    # The config as this cell sees it (matrix values applied); None only inside that very spec.
    spec: Spec | None = field(default=None, compare=False, repr=False)

    @property
    def view(self) -> Spec:
        assert self.spec is not None, "cells of a loaded spec carry their own view"
        return self.spec


@dataclass(frozen=True)
class Spec:
    path: Path  # the config file, absolute
    model: ModelSpec
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[OutputSpec, ...]
    export: ExportSpec
    simplify: bool
    profiles: tuple[ProfileSpec, ...]
    build: BuildSpec
    validate: ValidateSpec
    cells: tuple[Cell, ...]
    autocast: AutocastSpec = field(default_factory=AutocastSpec)
    calibration: CalibrationSpec | None = None
    probe: bool = True  # run the graph at every profile's edges before building (tasks/probe.py)
    code: CodeSpec = field(default_factory=CodeSpec)
    marks: dict[FieldPath, Location] = field(default_factory=dict, compare=False, repr=False)

    @property
    def directory(self) -> Path:
        return self.path.parent

    def location(self, path: FieldPath) -> Location | None:
        """The mark of `path`, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            mark = self.marks.get(path[:end])
            if mark is not None:
                return mark
        return None
