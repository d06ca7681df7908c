"""The pipeline, declared once as data: the stages a cell goes through, what each takes from which
earlier stage, which are shared across cells, and which outputs land under build/<model>/<cell>/.

The resolver, the report's stage order, the lock and triage all derive from this declaration:
adding a task kind is a new module under `trtbuild/tasks/` plus one `Stage` here (the steps, with
the tests to update, are in docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trtbuild.spec.semantic import SpecCheck
from trtbuild.tasks import build, export, precision, probe, reference, simplify, validate
from trtbuild.tasks.base import TaskKind
from trtbuild.tasks.precision_record import RECORD


@dataclass(frozen=True)
class From:
    """An input that is an output of an earlier stage: the first of `stages` that the cell has
    (a stage whose `derive` returns None is absent: simplify when `simplify: false`)."""

    stages: tuple[str, ...]
    output: str
    # Optional: a cell without any of `stages` (the probe when `probe: false`) goes without it.
    optional: bool = False


@dataclass(frozen=True)
class Stage:
    kind: TaskKind[Any]
    inputs: Mapping[str, From] = field(default_factory=dict)  # input name -> where it comes from
    # Independent of the cell's axes (precision, targets): named <model>/<kind> when every cell of
    # the model shares it. Tasks identical across cells are merged whether shared or not.
    shared: bool = False
    artifacts: tuple[str, ...] = ()  # outputs materialised under build/<model>/<cell>/, same name

    @property
    def name(self) -> str:
        return self.kind.name


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        problems = declaration_problems(self.stages)
        if problems:
            raise ValueError("pipeline declaration: " + "; ".join(problems))

    @property
    def kinds(self) -> dict[str, TaskKind[Any]]:
        return {stage.name: stage.kind for stage in self.stages}

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    @property
    def spec_checks(self) -> tuple[SpecCheck, ...]:
        """Each kind's checks of the config it reads, run when a config is loaded."""
        return tuple(stage.kind.check_spec for stage in self.stages)

    def with_stage(self, stage: Stage) -> Pipeline:
        """This pipeline with `stage` appended (its inputs must name earlier stages)."""
        return Pipeline((*self.stages, stage))


def declaration_problems(stages: tuple[Stage, ...]) -> list[str]:
    """Mistakes in a declaration, caught when it is made rather than as a KeyError mid-run: a stage
    named twice, an input from a stage that is not earlier or an output it does not make, an
    artifact the stage does not make or another stage already puts in the cell's folder."""
    problems: list[str] = []
    earlier: dict[str, Stage] = {}
    artifacts: dict[str, str] = {}
    for stage in stages:
        if stage.name in earlier:
            problems.append(f"stage {stage.name} is declared twice")
        for name, source in stage.inputs.items():
            found = [earlier[s] for s in source.stages if s in earlier]
            if not found:
                problems.append(
                    f"{stage.name}: input {name} comes from {source.stages}, none of them earlier"
                )
            problems += [
                f"{stage.name}: input {name}: stage {s.name} makes no {source.output}"
                for s in found
                if source.output not in s.kind.outputs
            ]
        for artifact in stage.artifacts:
            if artifact not in stage.kind.outputs:
                problems.append(
                    f"{stage.name}: artifact {artifact} is not among its outputs {stage.kind.outputs}"
                )
            elif artifact in artifacts:
                problems.append(f"{stage.name}: artifact {artifact} is also {artifacts[artifact]}'s")
            artifacts.setdefault(artifact, stage.name)
        earlier[stage.name] = stage
    return problems


GRAPH = From((simplify.NAME, export.NAME), export.OUTPUT)  # the fp32 graph: simplified if there is a simplify
CELL_GRAPH = From((precision.NAME,), precision.GRAPH)  # the graph in the cell's precision

PIPELINE = Pipeline(
    (
        Stage(export.KIND, shared=True),
        Stage(simplify.KIND, {simplify.GRAPH: From((export.NAME,), export.OUTPUT)}, shared=True),
        Stage(probe.KIND, {probe.GRAPH: GRAPH}, shared=True),
        # The samples and the PyTorch outputs, once per model: every cell's validation compares
        # against them, and a precision change reruns neither it nor the export.
        Stage(reference.KIND, shared=True),
        Stage(precision.KIND, {precision.GRAPH: GRAPH}, artifacts=(precision.GRAPH, RECORD)),
        # No engine is built from a graph that fails inside the profiles. The build, not precision,
        # waits for the probe: a build reruns when the profiles change anyway (they are its params),
        # while precision (AutoCast, calibration) does not depend on them and stays cached.
        Stage(
            build.KIND,
            {build.GRAPH: CELL_GRAPH, probe.OUTPUT: From((probe.NAME,), probe.OUTPUT, optional=True)},
            artifacts=(build.ENGINE, build.ENGINE_JSON),
        ),
        Stage(
            validate.KIND,
            {
                build.GRAPH: CELL_GRAPH,
                build.ENGINE: From((build.NAME,), build.ENGINE),
                build.ENGINE_JSON: From((build.NAME,), build.ENGINE_JSON),
                RECORD: From((precision.NAME,), RECORD),
                reference.OUTPUT: From((reference.NAME,), reference.OUTPUT),
            },
            artifacts=(validate.OUTPUT,),
        ),
    )
)
KINDS = PIPELINE.kinds
