"""calibration source callable: a function of the user's yielding (or returning) batches by input name."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from trtbuild.errors import Problem, TaskError
from trtbuild.spec.model import CalibrationSpec, Spec
from trtbuild.spec.semantic import field_problem
from trtbuild.spec.source import close_module_names, locate_module, missing_part, module_search_path
from trtbuild.spec.validate import did_you_mean
from trtbuild.tasks.calibration.base import Arrays, CalibrationSource, Files, InputSignature, SourceProblem
from trtbuild.tasks.code import code_of
from trtbuild.tasks.importing import import_attribute

# The precision task's file inputs for the local code of the function.
CODE_PREFIX = "calibration-code:"
HINT = (
    "the function must return or yield dicts {input name: array} (numpy or torch), batch first, "
    "with each input's dtype and fixed dims"
)


@dataclass(frozen=True, kw_only=True)
class CallableCalibration(CalibrationSource):
    """The function's identity is its name and its code, keyed as a model's is (`code_identity`):
    local modules by content, an installed one by its distribution's version. What the function
    reads at run time is not keyed."""

    source: str = "callable"
    function: str  # "module.path:function"
    package: str | None
    samples: int | None
    imports: tuple[str, ...] = ()  # the installed distributions local code imports, by version
    inputs: tuple[InputSignature, ...]

    fields: ClassVar[frozenset[str]] = frozenset({"function", "samples"})

    @classmethod
    def spec_problems(cls, spec: Spec, calibration: CalibrationSpec) -> Iterator[Problem]:
        if calibration.function is None:
            yield field_problem(
                spec,
                ("calibration",),
                "source callable needs `function`",
                "add `function: calib_data:batches`, a function in calib_data.py next to the config that "
                "returns or yields {input name: array} batches",
            )
            return
        module = calibration.function.partition(":")[0]
        search_path = module_search_path(spec.directory)
        if locate_module(module, search_path) is not None:
            return
        missing, _ = missing_part(module, search_path)
        suggestion = did_you_mean(missing, close_module_names(missing, search_path))
        yield field_problem(
            spec,
            ("calibration", "function"),
            f"cannot find module '{missing}' of calibration function {calibration.function}",
            (f"did you mean '{suggestion}'? " if suggestion else "")
            + f"put {missing.replace('.', '/')}.py next to the config ({spec.directory}), or install the "
            "package that provides it",
        )

    @classmethod
    def derive(cls, spec: Spec) -> tuple[CallableCalibration, Files]:
        calibration = spec.calibration
        assert calibration is not None and calibration.function is not None  # the spec checks made sure
        module = calibration.function.partition(":")[0]
        code = code_of(spec, ("calibration", "function"), module)
        inputs = tuple(InputSignature.of(t) for t in spec.inputs)
        return cls(
            function=calibration.function,
            package=code.package,
            samples=calibration.samples,
            inputs=inputs,
            imports=code.packages(),
        ), code.keyed(CODE_PREFIX)

    def load(self, files: Mapping[str, Path], search_path: Sequence[str]) -> Arrays:
        """The function's batches, checked one by one, concatenated, cut at `samples`."""
        import numpy as np

        collected: dict[str, list[Any]] = {t.name: [] for t in self.inputs}
        count = 0
        for index, batch in enumerate(iter_batches(self.function, self.inputs, search_path)):
            problems = batch_problems(batch, self.inputs)
            if problems:
                raise TaskError(f"batch {index} of {self.function}: {problems[0]}", problems[1:])
            for name, array in batch.items():
                collected[name].append(array)
            count += _batch_size(batch)
            if self.samples is not None and count >= self.samples:
                break  # the function may yield forever: stop as soon as there is enough
        if count == 0:
            raise TaskError(
                f"{self.function} gave no calibration samples",
                ["return or yield at least one batch {input name: array}"],
            )
        return {name: np.concatenate(arrays, axis=0)[: self.samples] for name, arrays in collected.items()}

    def preflight(
        self, spec: Spec, files: Mapping[str, Path], search_path: Sequence[str]
    ) -> list[SourceProblem]:
        """Call the function and check its first batch: names, shapes and dtypes against the inputs."""
        try:
            batch = first_batch(self.function, self.inputs, search_path)
        except TaskError as error:
            return [("function", str(error), " ".join(error.details) or HINT)]
        if batch is None:
            return [("function", f"{self.function} gave no batches", HINT)]
        return [
            ("function", f"first batch of {self.function}: {message}", HINT)
            for message in batch_problems(batch, self.inputs)
        ]


def first_batch(
    function: str, inputs: Sequence[InputSignature], search_path: Sequence[str]
) -> dict[str, Any] | None:
    """The function's first batch as numpy arrays (None when it gives none); for the preflight."""
    return next(iter_batches(function, inputs, search_path), None)


def iter_batches(
    function: str, inputs: Sequence[InputSignature], search_path: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """Batches of `function()`, as {input name: numpy array}; the user's errors become TaskErrors."""
    names = [t.name for t in inputs]
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


def batch_problems(batch: Mapping[str, Any], inputs: Sequence[InputSignature]) -> list[str]:
    """What is wrong with one batch against the inputs: names, ranks, fixed dims, dtypes, batch sizes.

    Axis 0 is not compared with a fixed batch size: batches are concatenated along it, and ModelOpt
    splits the whole into the model's batch size.
    """
    names = [t.name for t in inputs]
    problems = [
        f"no array for input '{name}' (the batch has {sorted(batch)})" for name in names if name not in batch
    ]
    extra = sorted(set(batch) - set(names))
    if extra:
        problems.append(f"arrays for unknown inputs {extra} (the inputs are {names})")
    for tensor in inputs:
        array = batch.get(tensor.name)
        if array is not None:
            problems += _array_problems(array, tensor)
    sizes = {int(a.shape[0]) for a in batch.values() if a.ndim > 0}
    if len(sizes) > 1:
        problems.append(f"the arrays have different batch sizes (axis 0): {sorted(sizes)}")
    return problems


def _array_problems(array: Any, tensor: InputSignature) -> list[str]:
    name, shape = tensor.name, list(tensor.shape)
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
    if str(array.dtype) != tensor.dtype:
        problems.append(f"array '{name}' is {array.dtype}, input '{name}' is {tensor.dtype}")
    return problems
