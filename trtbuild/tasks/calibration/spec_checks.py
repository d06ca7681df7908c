"""Checks of a config's `calibration` block made when it is loaded: quantized cells need one, and it
must not set fields its source ignores; each source class checks the rest (`spec_problems`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from trtbuild.errors import Problem
from trtbuild.spec.model import QUANTIZED_PRECISIONS, Spec
from trtbuild.spec.semantic import field_problem
from trtbuild.spec.yamlmarks import KEY_MARK
from trtbuild.tasks.calibration.base import CalibrationSource


def spec_problems(spec: Spec, sources: dict[str, type[CalibrationSource]]) -> Iterator[Problem]:
    """Quantized cells need calibration data, and its source needs what it reads: the npz file, the
    folder of images and the input they feed, the callable's module.

    The data itself (an npz's arrays, the first image, the callable's first batch) is checked before
    any task runs too, but later, in the run's preflight: that needs numpy, PIL or the user's code,
    which planning a cached run must not import.
    """
    quantized = [cell.name for cell in spec.cells if cell.precision in QUANTIZED_PRECISIONS]
    calibration = spec.calibration
    if quantized and calibration is None:
        yield field_problem(
            spec,
            ("precision",),
            f"cell(s) {', '.join(quantized)} need calibration data, and the config has no `calibration`",
            "add `calibration: {source: npz, path: calib.npz}` (arrays by input name), "
            "`{source: images, path: calib/}`, `{source: callable, function: module:function}`, or "
            "`calibration: {source: random, samples: 16}` to try things out (not fit for production)",
        )
    if calibration is None or not quantized:
        return  # data no cell of this view uses is not checked (nor read)
    source = sources[calibration.source]
    problems = [*_unused_calibration_fields(spec, calibration.source, source.fields)]
    problems += source.spec_problems(spec, calibration)
    for problem in problems:
        # Say which cells the data is for: the user may be wondering why int8 is involved at all.
        yield (
            dataclasses.replace(problem, message=f"{problem.message} (calibration of {', '.join(quantized)})")
            if quantized
            else problem
        )


def _unused_calibration_fields(spec: Spec, source: str, fields: frozenset[str]) -> Iterator[Problem]:
    """Any field the source does not read is a mistake (a `preprocess` that would be ignored)."""
    used = fields | {"source"}
    for path in spec.marks:
        if len(path) == 2 and path[0] == "calibration" and path[1] not in (*used, KEY_MARK):
            yield field_problem(
                spec,
                path,
                f"`{path[1]}` is not used by calibration source {source}",
                f"source {source} reads {', '.join(sorted(used - {'source'}))}: remove `{path[1]}` "
                "or change the source",
                at_key=True,
            )
