"""Datacenter TensorRT and TensorRT for RTX: one implementation of the Backend protocol, two flavours.

Both libraries expose the same builder / network / parser / profile API. What differs is data:
the module's name, the distributions that provide it, and whether it builds ahead of time for
declared compute capabilities (TensorRT-RTX, on any machine) or for the GPU it runs on (TensorRT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild import toolchain
from trtbuild.backends.base import BuildSettings, BuiltEngine


@dataclass(frozen=True)
class TensorRTFlavour:
    name: str
    module: str  # what `import` loads: tensorrt | tensorrt_rtx
    distributions: tuple[str, ...]  # the packages that provide it, newest CUDA first
    builds_ahead_of_time: bool
    hint: str
    default_targets: tuple[str, ...] = ()

    def installed(self) -> bool:
        return toolchain.module_available(self.module)

    def install_hint(self) -> str:
        return self.hint

    def usable_here(self) -> bool:
        return self.installed() and (self.builds_ahead_of_time or bool(toolchain.nvidia_gpus()))

    def version(self) -> str | None:
        found = toolchain.first_installed(self.distributions)
        return found[1] if found else None

    def tool_facts(self) -> dict[str, Any]:
        """A datacenter TensorRT engine is tuned for the GPU it is built on, so the GPU model, compute
        capability and driver enter the key. TensorRT-RTX builds ahead of time for declared targets,
        so the host's GPU does not matter."""
        if self.builds_ahead_of_time:
            # The worker's interpreter shapes the engine's bytes (recipe.py): its version is key material.
            return {self.module: self.version(), "python": toolchain.interpreter_version()}
        return {self.module: self.version(), "gpus": list(toolchain.nvidia_gpus())}

    def engine_targets(self, targets: Sequence[str]) -> list[str]:
        if not self.builds_ahead_of_time:
            return ["build GPU"]
        return list(targets) or list(self.default_targets)

    def build(
        self, onnx: Path, engine: Path, settings: BuildSettings, workdir: Path, toolchains: Path
    ) -> BuiltEngine:
        from trtbuild.backends.trt.worker import build_in_subprocess

        request = {
            "module": self.module,
            "ahead_of_time": self.builds_ahead_of_time,
            "onnx": str(onnx),
            "engine": str(engine),
            "profiles": [dict(profile) for profile in settings.profiles],
            "workspace": settings.workspace,
            "optimization_level": settings.optimization_level,
            "targets": list(settings.targets),
        }
        return build_in_subprocess(request, workdir, toolchains, self.version())

    def why_engine_cannot_run(self, targets: Sequence[str]) -> str | None:
        from trtbuild.backends.trt.runner import why_engine_cannot_run

        if not self.installed():
            return f"{self.name} is not installed ({self.hint})"
        supported = self.engine_targets(targets) if self.builds_ahead_of_time else None
        return why_engine_cannot_run(supported)

    def run_engine(self, engine: Path, feeds: Mapping[str, Any]) -> dict[str, Any]:
        from trtbuild.backends.trt.runner import run_engine

        return run_engine(self.module, engine, feeds)
