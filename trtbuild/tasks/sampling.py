"""Seeded input shapes inside the profiles' ranges, shared by export (example inputs) and validate.

The values that fill them are `values.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from trtbuild.spec.model import ProfileSpec, TensorSpec

if TYPE_CHECKING:
    import random

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


@dataclass(frozen=True)
class ShapePoint:
    """One set of input shapes inside a profile: every dynamic dim at its opt size, except at most
    one moved to its min or max, so a failure there is that dim's alone."""

    profile: str
    dim: str | None  # the dim moved off opt; None: all at opt
    bound: str  # "opt", "min" or "max"
    sizes: dict[str, int]  # every dynamic dim's size at this point
    shapes: Shapes

    def describe(self) -> str:
        moved = f"{self.dim} at its {self.bound} {self.sizes[self.dim]}" if self.dim else "every dim at opt"
        return f"profile '{self.profile}' {moved}"


def profile_points(inputs: Sequence[TensorSpec], profile: ProfileSpec) -> list[ShapePoint]:
    """The profile's opt shapes, then each dynamic dim alone at its min and at its max.

    Moving all dims together (the old samples: all-min, all-max) hides which dim a graph baked in,
    and can pass where one dim alone fails (a traced batch*seq product). Points equal to an earlier
    one are left out (a dim whose min is its opt)."""
    bounds: dict[str, dict[str, int]] = {}  # dim -> {"min": .., "opt": .., "max": ..}
    for tensor in inputs:
        shapes = profile.shapes[tensor.name]
        for axis, dim in tensor.dynamic_dims.items():
            # A dim shared by several inputs takes its range from the first (the spec checks agree).
            bounds.setdefault(
                dim, {"min": shapes.min[axis], "opt": shapes.opt[axis], "max": shapes.max[axis]}
            )
    opt = {dim: sizes["opt"] for dim, sizes in bounds.items()}
    moves: list[tuple[str | None, str, dict[str, int]]] = [(None, "opt", opt)] + [
        (dim, bound, {**opt, dim: bounds[dim][bound]}) for dim in bounds for bound in ("min", "max")
    ]
    points: list[ShapePoint] = []
    seen: list[dict[str, int]] = []
    for moved, bound, sizes in moves:
        if sizes in seen:
            continue
        seen.append(sizes)
        points.append(ShapePoint(profile.name, moved, bound, sizes, _shapes_at(inputs, sizes)))
    return points


def _shapes_at(inputs: Sequence[TensorSpec], sizes: dict[str, int]) -> Shapes:
    return {t.name: [sizes[d] if isinstance(d, str) else int(d) for d in t.shape] for t in inputs}


def sample_shapes(
    inputs: Sequence[TensorSpec], profiles: Sequence[ProfileSpec], samples: int, seed: int
) -> list[Shapes]:
    """`samples` input shape sets: each profile's `profile_points` in turn (round-robin across
    profiles), then random shapes inside the profiles.

    A symbolic dim shared by several inputs gets one value per sample, so the inputs stay consistent.
    """
    if not profiles:
        static = {t.name: [int(d) for d in t.shape] for t in inputs}
        return [static for _ in range(samples)]
    import random  # only sampling loads it, planning does not

    rng = random.Random(seed)
    points = [profile_points(inputs, profile) for profile in profiles]
    result: list[Shapes] = []
    for index in range(samples):
        which = index % len(profiles)
        round_ = index // len(profiles)
        if round_ < len(points[which]):
            result.append(points[which][round_].shapes)
        else:
            result.append(_random_shapes(inputs, profiles[which], rng))
    return result


def points_not_sampled(
    inputs: Sequence[TensorSpec], profiles: Sequence[ProfileSpec], samples: int
) -> tuple[list[ShapePoint], int]:
    """The profile points that `samples` samples leave out (`sample_shapes` takes them round-robin
    across profiles), and how many samples would take them all."""
    missed: list[ShapePoint] = []
    needed = 0
    for index, profile in enumerate(profiles):
        points = profile_points(inputs, profile)
        taken = max(0, -(-(samples - index) // len(profiles)))  # samples index, index + P, ... < samples
        missed += points[taken:]
        needed = max(needed, (len(points) - 1) * len(profiles) + index + 1)
    return missed, needed


def _random_shapes(inputs: Sequence[TensorSpec], profile: ProfileSpec, rng: random.Random) -> Shapes:
    sizes: dict[str, int] = {}
    for tensor in inputs:
        low, high = profile.shapes[tensor.name].min, profile.shapes[tensor.name].max
        for axis, dim in tensor.dynamic_dims.items():
            if dim not in sizes:
                sizes[dim] = rng.randint(low[axis], high[axis])
    return _shapes_at(inputs, sizes)
