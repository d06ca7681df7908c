"""build: ONNX -> serialized engine through the cell's backend, plus engine.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from trtbuild.backends.base import BuildSettings
from trtbuild.backends.registry import get_backend, resolve
from trtbuild.errors import ConfigError, Problem
from trtbuild.spec.model import Cell, ProfileSpec, Spec
from trtbuild.store.hashing import digest_bytes, digest_file
from trtbuild.tasks.base import (
    ANY_GPU,
    Derived,
    JsonDict,
    Planned,
    Resources,
    TaskContext,
    TaskKind,
    params_json,
)

NAME = "build"
GRAPH = "model.onnx"  # its input
ENGINE = "model.engine"
ENGINE_JSON = "engine.json"


@dataclass(frozen=True)
class BuildParams:
    backend: str  # a name in trtbuild.backends.registry, `auto` resolved
    precision: str  # recorded in engine.json: the graph's types decide the engine's precision
    profiles: tuple[ProfileSpec, ...]
    workspace: int | None
    optimization_level: int | None
    targets: tuple[str, ...]


class Build(TaskKind[BuildParams]):
    name = NAME
    # 7: the worker runs under the reproducibility recipe (backends/trt/recipe.py), which changes
    # the bytes; engine.json records whether they are reproducible. 8: the worker script (loader.py)
    # changed, and with it the bytes (tests/backends/test_trt_adapter.py pairs the two). 9: the
    # worker loads TensorRT's libraries in a fixed order. 10: it keeps the builder's info and
    # verbose messages only at TRTBUILD_LOG=debug, and such a build says its bytes may differ.
    # 11: engine.json's `onnx_hash` and `engine_hash` are BLAKE3 digests, as the lock's (were
    # `onnx_sha256`, `engine_sha256`).
    version = 11
    outputs = (ENGINE, ENGINE_JSON)

    def derive(self, spec: Spec, cell: Cell) -> Derived[BuildParams]:
        params = BuildParams(
            backend=backend_of(spec),
            precision=cell.precision,
            profiles=spec.profiles,
            workspace=spec.build.workspace,
            optimization_level=spec.build.optimization_level,
            targets=spec.build.targets,
        )
        return Derived(params)

    def tools(self, params: BuildParams) -> JsonDict:
        return get_backend(params.backend).tool_facts()

    def resources(self, params: BuildParams) -> Resources:
        return Resources(memory=self.memory, gpu=build_gpu(params.backend, params.targets))

    def preflight(self, spec: Spec, tasks: Sequence[Planned[BuildParams]]) -> list[Problem]:
        return [
            Problem(
                f"the {name} backend is not installed",
                location=spec.location(("build", "backend")),
                field_path="build.backend",
                hint=get_backend(name).install_hint(),
            )
            for name in sorted({task.params.backend for task in tasks})
            if not get_backend(name).installed()
        ]

    def run(self, ctx: TaskContext[BuildParams]) -> JsonDict:
        params = ctx.params
        backend = get_backend(params.backend)
        onnx_path, engine_path = ctx.inputs[GRAPH], ctx.output(ENGINE)
        profiles = [params_json(profile) for profile in params.profiles]
        settings = BuildSettings(profiles, params.workspace, params.optimization_level, params.targets)
        workdir = ctx.outdir.parent
        built = backend.build(
            onnx_path, engine_path, settings, workdir, ctx.toolchains or workdir / "toolchains"
        )
        reproducibility = built.reproducibility
        if not reproducibility.byte_reproducible:
            why = reproducibility.as_json()["reason"]
            ctx.warn(f"this engine's bytes are not guaranteed to repeat here: {why}")
        engine = engine_path.read_bytes()
        description = {
            **built.io,
            "backend": backend.name,
            "backend_version": backend.version(),
            "targets": backend.engine_targets(params.targets),
            "precision": params.precision,
            "profiles": profiles,
            "builder": {"workspace": params.workspace, "optimization_level": params.optimization_level},
            "onnx_hash": digest_file(onnx_path),
            "engine_hash": digest_bytes(engine),
            "engine_bytes": len(engine),
            # Machine-independent, so that the same engine gives the same engine.json anywhere; the
            # build environment's fingerprint goes to the task's result (and the lock) instead.
            "byte_reproducible": reproducibility.byte_reproducible,
            **({"not_reproducible_because": reproducibility.reason} if reproducibility.reason else {}),
        }
        ctx.output(ENGINE_JSON).write_text(json.dumps(description, indent=2, sort_keys=True) + "\n")
        return {
            "engine_bytes": len(engine),
            "backend": backend.name,
            "reproducibility": reproducibility.as_json(),
        }


def backend_of(spec: Spec) -> str:
    """The backend the spec asks for, `auto` resolved; targets need one that builds ahead of time."""
    name = resolve(spec.build.backend, spec.build.targets)
    if len(spec.build.targets) > 1 and not get_backend(name).builds_ahead_of_time:
        raise ConfigError(
            Problem(
                f"build.targets names {len(spec.build.targets)} GPU types but build.backend is {name}, "
                "which builds one engine on one GPU, for that GPU",
                location=spec.location(("build", "targets")),
                field_path="build.targets",
                hint="give one target per cell (a matrix axis: `build.targets: [[SM80], [SM89]]`), or use "
                "backend: tensorrt-rtx to build one engine ahead of time for several",
            )
        )
    return name


def build_gpu(backend: str, targets: Sequence[str]) -> str | None:
    """The GPU a cell's engine is built on and runs on: none for an ahead-of-time backend (built on
    any machine's CPU); else the one target's type, or any GPU when the spec names none."""
    if get_backend(backend).builds_ahead_of_time:
        return None
    return targets[0] if targets else ANY_GPU


KIND = Build()
