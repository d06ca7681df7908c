"""Seeded input shapes inside the profiles' ranges, shared by export (example inputs) and validate.

The values that fill them are `values.py`'s.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from trtbuild.spec.model import ProfileSpec, TensorSpec

Shapes = dict[str, list[int]]


def profile_shape(profile: ProfileSpec, input_name: str, which: str) -> list[int]:
    shapes = profile.shapes[input_name]
    return list({"min": shapes.min, "opt": shapes.opt, "max": shapes.max}[which])


def example_shapes(inputs: Sequence[TensorSpec], profiles: Sequence[ProfileSpec]) -> Shapes:
    """Shapes of the example inputs the exporter traces with.

    The first profile's opt shape, except that a dynamic dim of size 1 is raised to 2 where the
    profile allows it: exporters specialise size-1 dims to constants, which bakes them into the graph.
    """
    shapes: Shapes = {}
    for tensor in inputs:
        shape = list(tensor.shape)
        if not profiles:
            shapes[tensor.name] = [int(d) for d in shape]
            continue
        opt = profile_shape(profiles[0], tensor.name, "opt")
        high = profile_shape(profiles[0], tensor.name, "max")
        shapes[tensor.name] = [
            2 if isinstance(dim, str) and size == 1 and high[axis] >= 2 else size
            for axis, (dim, size) in enumerate(zip(shape, opt, strict=True))
        ]
    return shapes


def sample_shapes(
    inputs: Sequence[TensorSpec], profiles: Sequence[ProfileSpec], samples: int, seed: int
) -> list[Shapes]:
    """`samples` input shape sets that cover each profile's opt, min and max, then random shapes.

    A symbolic dim shared by several inputs gets one value per sample, so the inputs stay consistent.
    """
    if not profiles:
        static = {t.name: [int(d) for d in t.shape] for t in inputs}
        return [static for _ in range(samples)]
    rng = random.Random(seed)
    result: list[Shapes] = []
    for index in range(samples):
        profile = profiles[index % len(profiles)]
        round_ = index // len(profiles)
        fixed = ("opt", "min", "max")[round_] if round_ < 3 else None
        symbols: dict[str, int] = {}
        shapes: Shapes = {}
        for tensor in inputs:
            low = profile_shape(profile, tensor.name, "min")
            mid = profile_shape(profile, tensor.name, "opt")
            high = profile_shape(profile, tensor.name, "max")
            shape = []
            for axis, dim in enumerate(tensor.shape):
                if not isinstance(dim, str):
                    shape.append(int(dim))
                    continue
                if dim not in symbols:
                    bounds = {"opt": mid[axis], "min": low[axis], "max": high[axis]}
                    symbols[dim] = bounds[fixed] if fixed else rng.randint(low[axis], high[axis])
                shape.append(symbols[dim])
            shapes[tensor.name] = shape
        result.append(shapes)
    return result
