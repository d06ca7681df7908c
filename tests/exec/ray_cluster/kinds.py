"""Fixture task kinds for the Ray executor's tests: cheap tasks that declare GPU-type resources (no
GPU work can run here) or hold until the test lets them go, and a pipeline of them.

Their outputs depend on their params and inputs only, never on the node that ran them, so a run's
lock is the same wherever its tasks ran; where each ran is in the run's events (`TaskEvent.node`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from trtbuild.errors import TaskError
from trtbuild.spec.model import Cell, Spec
from trtbuild.tasks.base import Derived, JsonDict, Resources, TaskContext, TaskKind
from trtbuild.tasks.pipeline import From, Pipeline, Stage

SMALL = 64 << 20  # bytes: what these tasks declare, so any node of the test cluster can take them
# A folder beside the config: a Seed task writes started-<n> there and waits for `release` in it.
# Found through the task's context (the config's folder), which is not key material.
HOLD = "hold"


@dataclass(frozen=True)
class SeedParams:
    model: str


class Seed(TaskKind[SeedParams]):
    """A CPU task shared by every cell, that holds (when the config's folder has HOLD) until the
    test releases it."""

    name = "seed"
    version = 1
    outputs = ("seed.json",)

    def derive(self, spec: Spec, cell: Cell) -> Derived[SeedParams]:
        return Derived(SeedParams(spec.model.name), context={"folder": str(spec.directory)})

    def tools(self, params: SeedParams) -> JsonDict:
        return {}

    def resources(self, params: SeedParams) -> Resources:
        return Resources(cpus=1, memory=SMALL)

    def run(self, ctx: TaskContext[SeedParams]) -> JsonDict:
        hold = Path(ctx.context["folder"]) / HOLD
        if hold.is_dir():
            _hold(hold)
        ctx.output("seed.json").write_text(json.dumps({"model": ctx.params.model}) + "\n")
        return {}


@dataclass(frozen=True)
class PlacedParams:
    gpu: str


class Placed(TaskKind[PlacedParams]):
    """One per cell, on a GPU of the cell's `build.targets` type (a datacenter build's resources)."""

    name = "placed"
    version = 1
    outputs = ("placed.json",)

    def derive(self, spec: Spec, cell: Cell) -> Derived[PlacedParams]:
        return Derived(PlacedParams(spec.build.targets[0]))

    def tools(self, params: PlacedParams) -> JsonDict:
        return {}

    def resources(self, params: PlacedParams) -> Resources:
        return Resources(cpus=1, memory=SMALL, gpu=params.gpu)

    def run(self, ctx: TaskContext[PlacedParams]) -> JsonDict:
        seed = json.loads(Path(ctx.inputs["seed.json"]).read_text())
        document = {"gpu": ctx.params.gpu, **seed}
        ctx.output("placed.json").write_text(json.dumps(document, sort_keys=True) + "\n")
        return {}


@dataclass(frozen=True)
class FragileParams:
    target: str


class Fragile(TaskKind[FragileParams]):
    """A CPU task per cell that fails for the SM86 cell, with a message (as a task's TaskError)."""

    name = "fragile"
    version = 1
    outputs = ("fragile.json",)

    def derive(self, spec: Spec, cell: Cell) -> Derived[FragileParams]:
        return Derived(FragileParams(spec.build.targets[0]))

    def tools(self, params: FragileParams) -> JsonDict:
        return {}

    def resources(self, params: FragileParams) -> Resources:
        return Resources(cpus=1, memory=SMALL)

    def run(self, ctx: TaskContext[FragileParams]) -> JsonDict:
        if ctx.params.target == "SM86":
            raise TaskError("this fixture task fails for SM86", ["by design"])
        # The seed (the model's name) goes into the output, so that `after` is keyed apart in each
        # test: the nodes' caches live as long as the cluster, and equal bytes would be a hit there.
        seed = json.loads(Path(ctx.inputs["seed.json"]).read_text())
        ctx.output("fragile.json").write_text(json.dumps({"target": ctx.params.target, **seed}) + "\n")
        return {}


class After(Fragile):
    """A CPU task per cell after Fragile: skipped where Fragile failed."""

    name = "after"
    outputs = ("after.json",)

    def run(self, ctx: TaskContext[FragileParams]) -> JsonDict:
        ctx.output("after.json").write_text(Path(ctx.inputs["fragile.json"]).read_text())
        return {}


def _hold(folder: Path) -> None:
    """Say this attempt started (with the Ray node it runs on), then wait for `release`."""
    import ray

    attempt = len(list(folder.glob("started-*"))) + 1
    node = ray.get_runtime_context().get_node_id()
    (folder / f"started-{attempt}").write_text(node)
    deadline = time.monotonic() + 120
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


FRAGILE = Pipeline(
    (
        Stage(Seed(), shared=True),
        Stage(Fragile(), {"seed.json": From(("seed",), "seed.json")}),
        Stage(After(), {"fragile.json": From(("fragile",), "fragile.json")}, artifacts=("after.json",)),
    )
)
SEED_ONLY = Pipeline((Stage(Seed(), shared=True, artifacts=("seed.json",)),))
PLACED = Pipeline(
    (
        Stage(Seed(), shared=True, artifacts=("seed.json",)),
        Stage(Placed(), {"seed.json": From(("seed",), "seed.json")}, artifacts=("placed.json",)),
    )
)
# The seed as an intermediate: its result is no cell's artifact, so the driver never needs it.
SEED_NOT_SHOWN = Pipeline(
    (
        Stage(Seed(), shared=True),
        Stage(Placed(), {"seed.json": From(("seed",), "seed.json")}, artifacts=("placed.json",)),
    )
)
