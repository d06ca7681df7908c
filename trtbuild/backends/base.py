"""What a backend is: the protocol tasks talk to, and the settings an engine is built with.

A backend turns an ONNX graph into an engine file and, where this machine can, runs one. Tasks
know only this protocol; which library does the work, and how its flavours differ, stays inside
the backend's own folder. Nothing here imports an inference library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# One tensor of the engine's I/O: {"name", "dtype" (numpy/torch name), "shape" (-1: dynamic)}.
TensorDescription = dict[str, Any]
EngineIO = dict[str, list[TensorDescription]]  # {"inputs": [...], "outputs": [...]}
# One optimization profile: {"name", "shapes": {input: {"min": [...], "opt": [...], "max": [...]}}}.
ProfileShapes = Mapping[str, Any]


@dataclass(frozen=True)
class BuildSettings:
    profiles: Sequence[ProfileShapes]
    workspace: int | None = None  # bytes; None: the library's default
    optimization_level: int | None = None  # None: the library's default
    targets: Sequence[str] = ()  # compute capabilities, for backends that build ahead of time


@dataclass(frozen=True)
class Reproducibility:
    """Whether an engine's bytes are a function of its build inputs where it was built, and if not,
    why not. Recorded beside the engine; `verify` reads it to tell "not byte-reproducible (inputs
    identical)" from "different"."""

    byte_reproducible: bool
    reason: str | None  # why not, when not: the same words on every machine (engine.json has it)
    environment: str  # an opaque fingerprint of the build environment (no path is recorded)
    detail: str | None = None  # this machine's particulars (the refusal's message, a path's length)
    # Why a shared cache must not get this engine, if it must not: a choice of this run's that is
    # not key material (the log level) made its bytes, so other machines' runs of the same key
    # would be handed bytes their own build would not make (store/remote/layer.py reads it).
    not_shared: str | None = None

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"byte_reproducible": self.byte_reproducible, "environment": self.environment}
        if self.reason:
            found["reason"] = f"{self.reason} ({self.detail})" if self.detail else self.reason
        if self.not_shared:
            found["not_shared"] = self.not_shared
        return found


@dataclass(frozen=True)
class BuiltEngine:
    io: EngineIO
    reproducibility: Reproducibility


class Backend(Protocol):
    """An engine builder and runner, registered by name in `trtbuild.backends.registry`."""

    @property
    def name(self) -> str: ...

    @property
    def builds_ahead_of_time(self) -> bool:
        """True: builds on any machine for declared targets; False: for the GPU it builds on."""
        ...

    def installed(self) -> bool:
        """Whether its library can be imported here (found without importing it)."""
        ...

    def install_hint(self) -> str: ...

    def usable_here(self) -> bool:
        """Installed, and able to build on this machine (a GPU, where one is needed)."""
        ...

    def version(self) -> str | None:
        """The installed library's version, from package metadata."""
        ...

    def tool_facts(self) -> dict[str, Any]:
        """What an engine depends on besides the graph and settings: enters the build task's key."""
        ...

    def engine_targets(self, targets: Sequence[str]) -> list[str]:
        """The GPUs an engine built for `targets` runs on, as recorded in engine.json."""
        ...

    def build(
        self, onnx: Path, engine: Path, settings: BuildSettings, workdir: Path, toolchains: Path
    ) -> BuiltEngine:
        """Build `onnx` into the engine file `engine`; returns the network's I/O and whether the
        bytes are reproducible. `workdir`: scratch space; `toolchains`: a folder kept across runs
        where a backend may keep copies of its tools. Raises TaskError."""
        ...

    def why_engine_cannot_run(self, targets: Sequence[str]) -> str | None:
        """None when this machine can run an engine built for `targets`, else the reason."""
        ...

    def run_engine(self, engine: Path, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """Run the engine once on numpy `feeds`; numpy outputs by name."""
        ...
